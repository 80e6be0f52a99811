"""ONNX export of a model (dynamic batch and frame size)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from livefocus.model.registry import Model, load
from livefocus.model.unet import UNet

__all__ = ["export_onnx"]


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
) -> Path:
    """Export ``model`` to ONNX: input ``frames`` (N, 1, H, W) float32, normalised per slice
    (H, W multiples of ``2 ** depth``); output ``probabilities`` of the same shape.

    Uses the classic TorchScript-based exporter (no extra dependency), with dynamic N, H, W.
    """
    net = model.net if isinstance(model, Model) else model
    if not isinstance(net, UNet):
        net = load(net).net
    net = net.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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
    return path
