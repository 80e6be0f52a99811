"""How large the preview draws things: the one place for its size limits (Qt-free)."""

__all__ = ["FRAME_MAX_SIDE", "PANEL_MAX_SIDE", "VIEW3D_SIDE", "VOLUME_MAX_SIDE"]

#: Longest side of the live frame as drawn (larger frames are subsampled by a stride first).
FRAME_MAX_SIDE = 1024
#: Longest side of the smaller panels (focus, depth, all-in-focus).
PANEL_MAX_SIDE = 512
#: Longest side of each plane kept for the XZ / YZ sections, and of the sample that sets the
#: depth colour bar's range.
VOLUME_MAX_SIDE = 256
#: Side of the 3-D view's image (the in-focus voxels projected, :mod:`._render`).
VIEW3D_SIDE = 320
