"""A 2D U-Net (Ronneberger et al. 2015) of configurable depth and width, as in the paper."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["MAX_DEPTH", "MAX_WIDTH", "UNet", "UNetConfig", "unet_paper"]

#: Largest number of encoder levels, and of channels in the widest layer.
MAX_DEPTH = 8
MAX_WIDTH = 4096


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of a :class:`UNet` (written to a model's ``config.json``).

    Parameters
    ----------
    depth : int
        Number of encoder levels (each halves the resolution); the decoder mirrors them.
    base : int
        Channels of the first level; each level doubles them.
    in_channels, out_channels : int
        One grey-level slice in, one in-focus logit out.
    batch_norm : bool
        Batch normalisation after each convolution.
    global_context : bool
        Add frame-wide context at the bottleneck: the spatial mean and standard deviation of
        the bottleneck features, mapped by a 1 x 1 convolution and added to every position.
        Weak labels come from one Otsu threshold per slice, a frame-wide decision that a
        purely local receptive field cannot see. Frames larger than a tile get each tile's
        context.
    """

    depth: int = 3
    base: int = 8
    in_channels: int = 1
    out_channels: int = 1
    batch_norm: bool = True
    global_context: bool = False

    def __post_init__(self) -> None:
        for name in ("depth", "base", "in_channels", "out_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        # beyond these the network no longer fits in memory (the widest layer has
        # base * 2**depth channels; the paper's has 512)
        if self.depth > MAX_DEPTH:
            raise ValueError(f"depth must be at most {MAX_DEPTH}, got {self.depth!r}")
        if self.base * 2**self.depth > MAX_WIDTH:
            raise ValueError(
                f"base must keep base * 2**depth at most {MAX_WIDTH}, got base {self.base!r} "
                f"at depth {self.depth!r}"
            )

    @property
    def multiple(self) -> int:
        """Frame sizes must be multiples of this (2 ** depth); engines pad to it."""
        return int(2**self.depth)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UNetConfig:
        """From the JSON form; unknown keys are an error that names them."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown architecture keys in config: {sorted(unknown)}")
        return cls(**data)


def _block(cin: int, cout: int, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c in (cin, cout):
        layers.append(nn.Conv2d(c, cout, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """U-Net: ``depth`` encoder levels, a bottleneck, ``depth`` decoder levels with transposed
    convolutions and skip connections; returns logits of shape (N, out_channels, H, W).

    H and W must be multiples of ``2 ** depth`` (:func:`livefocus.model.engine` pads for you).

    Examples
    --------
    >>> net = UNet(UNetConfig(depth=2, base=4))
    >>> tuple(net(torch.zeros(1, 1, 16, 16)).shape)
    (1, 1, 16, 16)
    """

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or UNetConfig()
        c, bn = self.config, self.config.batch_norm
        widths = [c.base * 2**i for i in range(c.depth + 1)]
        self.down = nn.ModuleList()
        cin = c.in_channels
        for w in widths[:-1]:
            self.down.append(_block(cin, w, bn))
            cin = w
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _block(widths[-2], widths[-1], bn)
        self.context = (
            nn.Conv2d(2 * widths[-1], widths[-1], 1) if self.config.global_context else None
        )
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for w_hi, w in zip(widths[:0:-1], widths[-2::-1], strict=True):
            self.up.append(nn.ConvTranspose2d(w_hi, w, 2, stride=2))
            self.dec.append(_block(2 * w, w, bn))
        self.head = nn.Conv2d(widths[0], c.out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of normalised slices (N, C, H, W)."""
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        if self.context is not None:
            mean = x.mean(dim=(2, 3), keepdim=True)
            std = torch.sqrt(((x - mean) ** 2).mean(dim=(2, 3), keepdim=True) + 1e-6)
            x = torch.relu(x + self.context(torch.cat([mean, std], dim=1)))
        for up, dec, skip in zip(self.up, self.dec, reversed(skips), strict=True):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)  # type: ignore[no-any-return]

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def unet_paper() -> UNet:
    """The paper's configuration: 3 encoder levels, a bottleneck, 3 decoder levels (64 to 512
    channels), transposed convolutions and skip connections (about 7.7 M parameters)."""
    return UNet(UNetConfig(depth=3, base=64))
