"""The README's napari screenshot of a demo store (napari is not a livefocus dependency).

    livefocus demo --no-preview --size 256 --out /tmp/demo.ome.zarr
    xvfb-run -a -s "-screen 0 1400x1000x24" python docs/napari_screenshot.py /tmp/demo.ome.zarr

Registers livefocus's npe2 manifest (in case this environment installed livefocus before the
manifest existed), opens the store with the livefocus reader and saves docs/napari_demo.png.
"""

import sys
from pathlib import Path

import napari
from npe2 import PluginManager, PluginManifest

manifest = Path(__file__).parents[1] / "livefocus" / "napari.yaml"
PluginManager.instance().register(PluginManifest.from_file(manifest))
viewer = napari.Viewer(show=False)
viewer.open(sys.argv[1], plugin="livefocus")
viewer.layers["in focus (otsu)"].visible = False
viewer.layers["depth"].visible = False
viewer.dims.set_point(1, 20.0)  # z = 20 µm, the middle of the demo's 40 µm stack
viewer.reset_view()
viewer.window.resize(1200, 800)
viewer.screenshot(str(Path(__file__).parent / "napari_demo.png"), canvas_only=False, flash=False)
