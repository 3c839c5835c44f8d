"""Small matplotlib helpers shared by the experiments (headless Agg backend, one look everywhere).

Only what several experiments need: figure creation/saving, density contours on a grid,
covariance ellipses, histograms with a density curve. Everything takes NumPy arrays.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display (must precede pyplot)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402

__all__ = ["subplots", "save", "grid_eval", "density_contours", "ellipse", "hist", "image_grid", "show_images", "COLORS"]

COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]
plt.rcParams.update({"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.25, "font.size": 9,
                     "axes.titlesize": 10, "legend.fontsize": 8})


def subplots(nrows: int = 1, ncols: int = 1, **kw):
    """``plt.subplots`` with a size that grows with the panel count and a tight layout."""
    kw.setdefault("figsize", (4.2 * ncols, 3.6 * nrows))
    kw.setdefault("layout", "constrained")
    return plt.subplots(nrows, ncols, **kw)


def save(fig, path: Path | str, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG and close it (figures would otherwise accumulate across runs)."""
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def grid_eval(fn: Callable[[np.ndarray], np.ndarray], xlim, ylim, n: int = 150):
    """Evaluate ``fn`` (maps (M, 2) points to (M,)) on an ``n`` x ``n`` grid -> (xx, yy, values)."""
    xs = np.linspace(*xlim, n)
    ys = np.linspace(*ylim, n)
    xx, yy = np.meshgrid(xs, ys)
    values = np.asarray(fn(np.stack([xx.ravel(), yy.ravel()], axis=1))).reshape(xx.shape)
    return xx, yy, values


def density_contours(ax, log_prob: Callable[[np.ndarray], np.ndarray], xlim, ylim, *, n: int = 150,
                     levels: int = 8, filled: bool = False, **kw):
    """Contours of a 2-D log-density, drawn at evenly spaced log-density levels over the top
    ~6 nats (the interesting part; far tails would only add rings)."""
    xx, yy, lp = grid_eval(log_prob, xlim, ylim, n)
    top = float(np.max(lp))
    lv = np.linspace(top - 6.0, top, levels + 1)[:-1]
    kw.setdefault("cmap", "viridis")
    draw = ax.contourf if filled else ax.contour
    return draw(xx, yy, lp, levels=lv, **kw)


def ellipse(ax, mean, cov, *, n_std: float = 2.0, **kw):
    """The ``n_std``-sigma ellipse of a 2-D Gaussian (axes along the covariance eigenvectors)."""
    vals, vecs = np.linalg.eigh(np.asarray(cov, dtype=float))
    angle = np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1]))
    w, h = 2 * n_std * np.sqrt(np.maximum(vals[::-1], 0.0))
    kw.setdefault("fill", False)
    kw.setdefault("lw", 1.8)
    patch = Ellipse(np.asarray(mean, dtype=float), w, h, angle=angle, **kw)
    ax.add_patch(patch)
    return patch


def hist(ax, x, bins=30, **kw):
    """A density-normalised histogram (so that fitted pdfs can be drawn over it)."""
    kw.setdefault("alpha", 0.45)
    kw.setdefault("edgecolor", "white")
    return ax.hist(np.asarray(x).ravel(), bins=bins, density=True, **kw)


def image_grid(images, rows: int, cols: int, shape, pad: int = 1) -> np.ndarray:
    """Tile ``images (rows * cols, H * W)`` (values in [0, 1]) into one ``(rows (H + pad), cols (W + pad))``
    array with white gutters; extra images are dropped, values clipped to [0, 1]."""
    H, W = shape
    g = np.ones((rows * (H + pad), cols * (W + pad)))
    for i, img in enumerate(np.asarray(images)[: rows * cols]):
        r, c = divmod(i, cols)
        g[r * (H + pad): r * (H + pad) + H, c * (W + pad): c * (W + pad) + W] = np.clip(np.asarray(img).reshape(H, W), 0, 1)
    return g


def show_images(ax, grid: np.ndarray, title: str, *, cmap: str = "gray"):
    """Draw an :func:`image_grid` without axes."""
    ax.imshow(grid, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
