"""Micro-Manager Python devices and ready cores (pymmcore-plus ``UniMMCore``).

- :class:`SpecimenCamera` images the simulated specimen of :mod:`livefocus.sim` at the Z of
  the :class:`SimZStage` it is linked to (the ``Link`` property, :mod:`._link`), through the
  field of view of the :class:`SimXYStage` linked to it, if any.
- :class:`ReplayCamera` serves the plane of a saved stack nearest to the stage's Z.
- :func:`demo_core`, :func:`replay_core`: cores loaded from ``device_configs/demo.cfg`` and
  ``replay.cfg``; :func:`demo_truth` gives the exact truth of any frame of a demo core.
"""

from livefocus.devices._cores import (
    DEMO_CFG,
    REPLAY_CFG,
    REPLAY_DEFAULT_PATH,
    demo_camera,
    demo_cfg_text,
    demo_core,
    demo_specimen,
    demo_truth,
    fit_travel_to_replay,
    new_core,
    replay_camera,
    replay_cfg_text,
    replay_core,
)
from livefocus.devices._link import DEFAULT_LINK, Linked
from livefocus.devices._replay import ReplayCamera, config_folder, replay_frames
from livefocus.devices._specimen import SpecimenCamera
from livefocus.devices._stage import SimZStage
from livefocus.devices._xystage import SimXYStage

__all__ = [
    "DEFAULT_LINK",
    "DEMO_CFG",
    "REPLAY_CFG",
    "REPLAY_DEFAULT_PATH",
    "Linked",
    "ReplayCamera",
    "SimXYStage",
    "SimZStage",
    "SpecimenCamera",
    "config_folder",
    "demo_camera",
    "demo_cfg_text",
    "demo_core",
    "demo_specimen",
    "demo_truth",
    "fit_travel_to_replay",
    "new_core",
    "replay_camera",
    "replay_cfg_text",
    "replay_core",
    "replay_frames",
]
