"""Losses and metric of the paper: focal + Dice + BCE, and IoU."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["bce_loss", "combined_loss", "dice_loss", "focal_loss", "iou_score"]


def bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of logits against a {0, 1} target."""
    return F.binary_cross_entropy_with_logits(logits, target)


def focal_loss(
    logits: torch.Tensor, target: torch.Tensor, *, gamma: float = 2.0, alpha: float = 0.25
) -> torch.Tensor:
    """Focal loss (Lin et al. 2017): BCE down-weighted on well-classified pixels."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    a_t = alpha * target + (1 - alpha) * (1 - target)
    return (a_t * (1 - p_t) ** gamma * bce).mean()


def dice_loss(logits: torch.Tensor, target: torch.Tensor, *, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice, pooled over the batch (``eps`` keeps empty masks finite)."""
    p = torch.sigmoid(logits)
    inter = (p * target).sum()
    return 1 - (2 * inter + eps) / (p.sum() + target.sum() + eps)


def combined_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The paper's training loss: focal + Dice + BCE (equal weights)."""
    return focal_loss(logits, target) + dice_loss(logits, target) + bce_loss(logits, target)


def iou_score(logits: torch.Tensor, target: torch.Tensor, *, threshold: float = 0.5) -> float:
    """IoU of the thresholded prediction against a {0, 1} target (1.0 when both are empty)."""
    pred = torch.sigmoid(logits) > threshold
    true = target > 0.5
    union = (pred | true).sum().item()
    return float((pred & true).sum().item() / union) if union else 1.0
