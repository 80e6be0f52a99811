"""Models as folders (``config.json`` + ``weights.pt``), loaded by name or path."""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from livefocus._output import write_marker
from livefocus.depth import ZPeaks
from livefocus.model.unet import UNet, UNetConfig

__all__ = ["FORMAT", "SHIPPED", "Model", "available", "load", "model_dir", "normalisation", "save"]

FORMAT = "livefocus-unet/1"
#: Models shipped inside the package (no download at run time).
SHIPPED = Path(__file__).parent / "weights"
WEIGHTS = "weights.pt"


@dataclass
class Model:
    """A loaded model: the network (in eval mode), its config and where it came from."""

    net: UNet
    config: dict[str, Any]
    path: Path | None

    @property
    def name(self) -> str:
        """The model's name (from its config)."""
        return str(self.config.get("name", "unnamed"))

    @property
    def threshold(self) -> float:
        """Probability above which a pixel is in focus."""
        return float(self.config.get("threshold", 0.5))

    @property
    def context(self) -> int:
        """Planes per input: the current one and the ``context - 1`` before it (its input
        channels; 1 for a single-frame model, and for folders written before this key)."""
        return int(self.net.config.in_channels)

    @property
    def z_peaks(self) -> ZPeaks | None:
        """The rule that makes a stack's final masks from its probabilities
        (:mod:`livefocus.depth`); None: each plane's probability above the threshold
        (folders without ``"z_peaks"`` in config.json)."""
        return ZPeaks.from_config(self.config)


def normalisation(context: int) -> str:
    """The input normalisation of a model of ``context`` planes, as config.json names it:
    one z-score per slice, or one over all the planes of a window."""
    return "per_slice_zscore" if context == 1 else "joint_zscore"


def available() -> list[str]:
    """Names of the shipped models."""
    return sorted(p.name for p in SHIPPED.iterdir() if (p / "config.json").is_file())


def model_dir(name_or_path: str | Path) -> Path:
    """The folder of a shipped model name, or an existing folder path."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            f"model must be a shipped name or a folder path, got {type(name_or_path).__name__}"
        )
    if str(name_or_path) == "":
        raise ValueError("model must not be empty: give a shipped name or a folder path")
    path = Path(name_or_path)
    if path.is_dir():
        return path
    shipped = SHIPPED / str(name_or_path)
    if shipped.is_dir():
        return shipped
    raise FileNotFoundError(
        f"model {str(name_or_path)!r} is neither a folder nor a shipped model "
        f"({', '.join(available()) or 'none shipped'})"
    )


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save(net: UNet, folder: str | Path, config: dict[str, Any]) -> Path:
    """Write ``net`` and ``config`` (architecture and checksum added) as a model folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, buffer)
    (folder / WEIGHTS).write_bytes(buffer.getvalue())
    full = {
        "format": FORMAT,
        **config,
        "architecture": net.config.to_dict(),
        "context": net.config.in_channels,
        "normalisation": normalisation(net.config.in_channels),
        "weights": WEIGHTS,
        "weights_sha256": sha256(folder / WEIGHTS),
        "parameters": net.n_parameters(),
    }
    (folder / "config.json").write_text(json.dumps(full, indent=2, default=str) + "\n")
    write_marker(folder, "model")
    return folder


def load(name_or_path: str | Path = "default") -> Model:
    """Load a model by shipped name (``"default"``) or folder path.

    Raises
    ------
    FileNotFoundError
        No such model, or its ``config.json`` or weights file is missing.
    ValueError
        Config unreadable or of another format, weights corrupt (checksum or unpickling), or
        weights that do not match the architecture in the config.

    Examples
    --------
    >>> load("default").net.config.depth
    3
    """
    folder = model_dir(name_or_path)
    cfg_path = folder / "config.json"
    # messages start with "model": the CLI puts the option that named it (--model) in front
    where = f"model {str(folder)!r}: config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"model folder {str(folder)!r} has no config.json")
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where}: not valid JSON ({exc})") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{where}: not a livefocus model config (format must be {FORMAT!r})")
    try:
        arch = UNetConfig.from_dict(dict(config.get("architecture", {})))
    except (TypeError, ValueError) as exc:  # named by its file, not taken for a CLI option
        raise ValueError(f"{where}: architecture: {exc}") from None
    # folders written before models took previous planes have no "context": one plane
    context = config.get("context", 1)
    if context != arch.in_channels:
        raise ValueError(
            f"{where}: context {context!r} does not match the architecture's "
            f"{arch.in_channels} input channels"
        )
    if config.get("normalisation") != normalisation(arch.in_channels):
        raise ValueError(
            f"{where}: unknown normalisation {config.get('normalisation')!r} for a model of "
            f"{arch.in_channels} planes (expected {normalisation(arch.in_channels)!r})"
        )
    threshold = config.get("threshold", 0.5)
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not 0 < threshold < 1
    ):
        # a probability threshold outside (0, 1), or NaN, marks nothing or everything
        raise ValueError(f"{where}: threshold must be a probability in (0, 1), got {threshold!r}")
    try:
        ZPeaks.from_config(config)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from exc
    weights = folder / str(config.get("weights", WEIGHTS))
    if not weights.is_file():
        raise FileNotFoundError(f"model {str(folder)!r}: weights file {weights.name} is missing")
    expected = config.get("weights_sha256")
    if expected and sha256(weights) != expected:
        raise ValueError(
            f"model {str(folder)!r}: {weights.name} is corrupt or was replaced "
            "(its SHA-256 differs from config.json)"
        )
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"model {str(folder)!r}: cannot read {weights.name} ({exc})") from exc
    net = UNet(arch)
    try:
        net.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()
        raise ValueError(
            f"model {str(folder)!r}: config.json does not match the weights "
            f"({' '.join(line.strip() for line in first[:3])})"
        ) from exc
    net.eval()
    return Model(net=net, config=config, path=folder)
