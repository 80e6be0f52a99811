"""Refit the confidence calibration (``livefocus/depth/_calibration.py``) on :mod:`livefocus.sim`.

``python -m tests.support.calibrate`` prints the logistic weights to paste into
``CALIBRATION``. A peak is *right* when its depth lies within half the depth of field of the
truth (an object there); on background it is wrong.
"""

from __future__ import annotations

import numpy as np

from livefocus.depth import ReconstructSettings, StackReconstructor
from livefocus.depth._calibration import features, peak_features
from livefocus.sim import simulate_stack


def samples(raw: np.ndarray, depth: np.ndarray, z_step: float) -> tuple[np.ndarray, np.ndarray]:
    """Features and right/wrong labels of the pixels that get a depth."""
    shape = (raw.shape[1], raw.shape[2])
    # every confident peak's depth, also those the calibrated probability would drop
    settings = ReconstructSettings.for_frame(shape, min_probability=0.0)
    rec = StackReconstructor(shape, z_step=z_step, settings=settings)
    for frame in raw:
        rec.add(frame)
    res, _ = rec.finish()
    assert rec._features is not None
    prom, support, height, density = rec._features
    confident = np.isfinite(res.depth)
    right = np.isfinite(depth) & (np.abs(res.depth - depth) <= rec.depth_of_field / 2)
    x = features(peak_features(prom, support, height), density)[:, confident]
    return x, right[confident]


def fit(x: np.ndarray, y: np.ndarray, iterations: int = 30) -> np.ndarray:
    """Logistic regression by Newton's method (a tiny ridge keeps it well posed)."""
    w = np.zeros(x.shape[0])
    xd = x.astype(np.float64)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(w @ xd, -30, 30)))
        grad = xd @ (p - y) + 1e-6 * w
        hess = (xd * (p * (1 - p))) @ xd.T + 1e-6 * np.eye(len(w))
        w -= np.linalg.solve(hess, grad)
    return w


def main() -> None:
    xs, ys = [], []
    # varied on purpose (sparser specimens, dimmer light, both plane steps) so that the
    # model sees the mistakes of hard stacks too, not only of the default ones
    for contrast in ("brightfield", "fluorescence"):
        for seed, density, dim, z_step in (
            (0, 1.0, 1.0, 2.0),
            (1, 1.0, 1.0, 2.0),
            (2, 1.0, 1.0, 2.0),
            (3, 0.3, 1.0, 2.0),
            (4, 0.3, 0.25, 2.0),
            (5, 0.5, 0.5, 1.5),
        ):
            bright = (2500.0 if contrast == "brightfield" else 1200.0) * dim
            st = simulate_stack(
                (20, 256, 256),
                seed=seed,
                contrast=contrast,
                z_step=z_step,
                density=density,
                brightness=bright,
            )
            x, y = samples(st.raw, st.depth, z_step)
            xs.append(x)
            ys.append(y)
    w = fit(np.concatenate(xs, axis=1), np.concatenate(ys).astype(np.float64))
    print("CALIBRATION =", tuple(round(float(v), 4) for v in w))


if __name__ == "__main__":
    main()
