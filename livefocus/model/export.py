"""ONNX export of a model (dynamic batch and frame size, sides a multiple of ``2 ** depth``)."""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch

from livefocus._output import STORE_KEY as MARKER_KEY
from livefocus._output import prepare_output
from livefocus.focus._validate import check_positive_int
from livefocus.model.registry import Model, load
from livefocus.model.unet import UNet

__all__ = ["OPSETS", "export_onnx"]

#: The ONNX opsets that torch's classic (TorchScript) exporter writes.
OPSETS = range(7, 21)


class _Probabilities(torch.nn.Module):
    """Wraps a U-Net so that the exported graph returns probabilities."""

    def __init__(self, net: UNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))


def export_onnx(
    model: str | Path | Model | UNet,
    path: str | Path,
    *,
    opset: int = 17,
    example_size: int = 256,
    overwrite: bool = False,
) -> Path:
    """Export ``model`` to ONNX: input ``frames`` (N, context, H, W) float32, as
    :func:`livefocus.model.model_input` makes it (context 1: each slice z-scored; more: one
    z-score per window of planes), H, W multiples of ``2 ** depth``; output
    ``probabilities`` (N, 1, H, W).

    Uses the classic TorchScript-based exporter (no extra dependency), with dynamic N, H, W.
    The file's metadata carries a ``livefocus`` key and ``frame_multiple`` (the multiple H and
    W must be; livefocus's engines pad a frame to it, a client of the file must do the same);
    ``overwrite`` replaces only such a file.
    """
    net = model.net if isinstance(model, Model) else model
    if not isinstance(net, UNet):
        net = load(net).net
    net = net.eval()
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in OPSETS:
        raise ValueError(f"opset must be an int from {OPSETS[0]} to {OPSETS[-1]}, got {opset!r}")
    size = check_positive_int(example_size, "example_size")
    if size % net.config.multiple:
        raise ValueError(
            f"example_size must be a multiple of {net.config.multiple}, got {example_size!r}"
        )
    path = Path(path)  # its folder must exist, as for every writer (prepare_output)
    source = model.path if isinstance(model, Model) else None
    if isinstance(model, (str, Path)) and Path(model).exists():
        source = Path(model)
    inputs = [source] if source is not None else []
    path = prepare_output(path, overwrite=overwrite, inputs=inputs, owned=_is_livefocus_onnx)
    example = torch.zeros(1, net.config.in_channels, example_size, example_size)
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        # The classic exporter announces its own deprecation; it is what we want here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            # eval(): the exporter restores the wrapper's mode, recursively, afterwards
            _Probabilities(net).eval(),
            (example,),
            str(path),
            input_names=["frames"],
            output_names=["probabilities"],
            dynamic_axes={"frames": axes, "probabilities": axes},
            opset_version=opset,
            dynamo=False,
        )
    graph = onnx.load(str(path))
    props = {MARKER_KEY: "onnx export", "frame_multiple": str(net.config.multiple)}
    onnx.helper.set_model_props(graph, props)
    onnx.save(graph, str(path))
    return path


def _is_livefocus_onnx(path: Path) -> bool:
    """Whether ``path`` is an ONNX file that :func:`export_onnx` wrote."""
    if not path.is_file() or path.is_symlink():
        return False
    try:
        graph = onnx.load(str(path), load_external_data=False)
    except Exception:  # not ONNX at all
        return False
    return any(prop.key == MARKER_KEY for prop in graph.metadata_props)
