"""The U-Net surrogate of the std rule (Li, Kudryashev & Yakimovich, Sci Rep 2023).

- :class:`UNet`, :func:`unet_paper`: the network (configurable depth / width).
- :func:`train`, :func:`finetune`, :func:`evaluate`: weak-label training, fine-tuning on
  exact masks, and the Table-2 analogue.
- :func:`load`: a model folder (``config.json`` + ``weights.pt``) by shipped name or path.
- :func:`engine`: fast inference with torch, ONNX Runtime or TensorRT; :func:`export_onnx`.
- :func:`predict_tiled`: any frame size by overlapping, blended tiles.
- :class:`ZPeaks`, :func:`peak_masks`, :class:`ZPeakFinaliser`: a stack's final masks, the
  planes around each pixel's peaks in z of the probability (online: plane by plane).
- :func:`calibrate`, :func:`calibrate_on`: fine-tuning on the rule's masks of the user's own
  stack (self-calibration), never worse than the base model on held-out tiles.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names are imported on first use: torch and onnx take 2 s to import,
    # and a stream without a U-Net (which needs only the z-peak rule) never pays for them
    from livefocus.model.calibrate import calibrate, calibrate_on
    from livefocus.model.data import model_input
    from livefocus.model.engines import Engine, engine
    from livefocus.model.export import export_onnx
    from livefocus.model.registry import Model, available, load
    from livefocus.model.tiling import predict_tiled
    from livefocus.model.train import PRESETS, evaluate, finetune, predict_probabilities, train
    from livefocus.model.unet import UNet, UNetConfig, unet_paper
    from livefocus.model.zpeaks import ZPeakFinaliser, ZPeaks, peak_masks

__all__ = [
    "PRESETS",
    "Engine",
    "Model",
    "UNet",
    "UNetConfig",
    "ZPeakFinaliser",
    "ZPeaks",
    "available",
    "calibrate",
    "calibrate_on",
    "engine",
    "evaluate",
    "export_onnx",
    "finetune",
    "load",
    "model_input",
    "peak_masks",
    "predict_probabilities",
    "predict_tiled",
    "train",
    "unet_paper",
]

_LAZY = {
    "calibrate": "livefocus.model.calibrate",
    "calibrate_on": "livefocus.model.calibrate",
    "model_input": "livefocus.model.data",
    "Engine": "livefocus.model.engines",
    "engine": "livefocus.model.engines",
    "export_onnx": "livefocus.model.export",
    "Model": "livefocus.model.registry",
    "available": "livefocus.model.registry",
    "load": "livefocus.model.registry",
    "predict_tiled": "livefocus.model.tiling",
    "PRESETS": "livefocus.model.train",
    "evaluate": "livefocus.model.train",
    "finetune": "livefocus.model.train",
    "predict_probabilities": "livefocus.model.train",
    "train": "livefocus.model.train",
    "UNet": "livefocus.model.unet",
    "UNetConfig": "livefocus.model.unet",
    "unet_paper": "livefocus.model.unet",
    "ZPeakFinaliser": "livefocus.model.zpeaks",
    "ZPeaks": "livefocus.model.zpeaks",
    "peak_masks": "livefocus.model.zpeaks",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'livefocus.model' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
