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

from livefocus.depth import ZPeakFinaliser, ZPeaks, peak_masks
from livefocus.model.calibrate import calibrate, calibrate_on
from livefocus.model.data import model_input
from livefocus.model.engines import Engine, engine
from livefocus.model.export import export_onnx
from livefocus.model.registry import Model, available, load
from livefocus.model.tiling import predict_tiled
from livefocus.model.train import PRESETS, evaluate, finetune, predict_probabilities, train
from livefocus.model.unet import UNet, UNetConfig, unet_paper

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
