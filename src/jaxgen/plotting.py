"""Small matplotlib helpers shared by the experiments (headless Agg backend, one look everywhere).

Only what several experiments need: figure creation/saving, density contours on a grid,
covariance ellipses, histograms with a density curve, image grids (:func:`show_latent_grid` with
its latent axes), :func:`mean_std` / :func:`over_seeds` for the mean-and-spread cells of tables and
figures, and :func:`check_figure`, the figure rules every experiment's figures obey
(``Run.save_figure`` applies it). Everything takes NumPy arrays.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display (must precede pyplot)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.contour import ContourSet  # noqa: E402
from matplotlib.patches import Ellipse, Rectangle  # noqa: E402

__all__ = ["subplots", "save", "grid_eval", "density_contours", "ellipse", "hist", "image_grid", "show_images",
           "show_latent_grid", "mean_std", "over_seeds", "check_figure", "FigureRuleError", "legend_outside", "COLORS"]

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
    ~6 nats (the interesting part; far tails would only add rings).

    Line contours are drawn at ``levels`` values below the grid's maximum. Filled contours get
    ``levels`` bands whose top band reaches the maximum (``extend="max"``), so that the peaks are
    filled, not left as white holes; below the lowest level the background shows.
    """
    xx, yy, lp = grid_eval(log_prob, xlim, ylim, n)
    top = float(np.max(lp))
    lv = np.linspace(top - 6.0, top, levels + 1)
    kw.setdefault("cmap", "viridis")
    if filled:
        return ax.contourf(xx, yy, lp, levels=lv[:-1], extend="max", **kw)
    return ax.contour(xx, yy, lp, levels=lv[:-1], **kw)


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


def show_latent_grid(ax, images, z1, z2, shape, title: str, *, cmap: str = "gray", pad: int = 1,
                     labels=("z_1", "z_2"), max_ticks: int = 7):
    """Decoder outputs on a grid of 2-D latent values, drawn with the latent values on the axes.

    Args:
      images: ``(len(z2) * len(z1), H * W)`` in [0, 1], row-major: row r is ``z_2 = z2[r]`` (top
        first), column c is ``z_1 = z1[c]``.
      z1, z2: the grid's latent values along x (left to right) and along y (top to bottom).
      shape: ``(H, W)`` of one image. labels: the x and y axis labels. max_ticks: at most this many
        labelled values per axis (every k-th cell on a dense grid).
    """
    z1, z2 = np.asarray(z1, float), np.asarray(z2, float)
    H, W = shape
    ax.imshow(image_grid(images, len(z2), len(z1), shape, pad=pad), cmap=cmap, vmin=0, vmax=1,
              interpolation="nearest")
    ax.grid(False)
    for values, size, set_ticks in ((z1, W, ax.set_xticks), (z2, H, ax.set_yticks)):
        every = -(-len(values) // max_ticks)
        cells = np.arange(0, len(values), every)
        set_ticks(cells * (size + pad) + (size - 1) / 2, [f"{v:.2g}" for v in values[cells]])
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(title, fontsize=9)


def mean_std(mean: float, std: float, n: int, digits: int = 3) -> str:
    """A table cell over ``n`` seeds: ``"1.234 ± 0.056"``, or for one seed the value alone (``"1.234"``):
    one seed has no spread, and ``± 0.000`` would claim one."""
    return f"{mean:.{digits}f}" if n == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def over_seeds(n: int) -> str:
    """What a table's or figure's numbers are: ``"mean ± std over 3 seeds"``, or ``"one seed"``."""
    return "one seed" if n == 1 else f"mean ± std over {n} seeds"


def legend_outside(ax, where: str = "right", **kw):
    """A legend beside (``"right"``) or below (``"below"``) the axes, where it cannot hide data.

    Needs a layout that makes room for it (the ``constrained`` layout of :func:`subplots` does).
    """
    if where == "right":
        return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kw)
    if where == "below":
        kw.setdefault("ncol", 2)
        return ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), borderaxespad=0.0, **kw)
    raise ValueError(f"where must be 'right' or 'below', got {where!r}.")


# --------------------------------------------------------------------------- the figure rules

_BRACKETS = {")": "(", "]": "[", "}": "{"}


class FigureRuleError(RuntimeError):
    """A figure breaks the rules of :func:`check_figure` (raised by quick runs, ``Run.save_figure``)."""


def _title_problems(text: str) -> list[str]:
    """Unbalanced or empty brackets, ``=`` then ``:`` inside one bracket (``P(n = 2: 1.00)``: is 1.00
    the value of n = 2 or of P?), and a title ending in a separator (``:``, ``,``, ``=``)."""
    stack, problems = [], []  # stack: (opening bracket, separators seen inside it)
    for c in text.replace("$", ""):
        if c in "([{":
            stack.append((c, []))
        elif c in _BRACKETS:
            if not stack or stack.pop()[0] != _BRACKETS[c]:
                problems.append(f"unbalanced {c!r}")
                stack = []
                break
        elif c in "=:" and stack:
            seen = stack[-1][1]
            if c == ":" and "=" in seen and "mixes '=' and ':'" not in " ".join(problems):
                problems.append("mixes '=' and ':' inside one bracket (write e.g. 'P(n = 2) = 1.00')")
            seen.append(c)
        elif c in ",;" and stack:
            stack[-1][1].clear()
    if stack:
        problems.append(f"unclosed {stack[-1][0]!r}")
    if any(e in text for e in ("()", "[]")):
        problems.append("empty brackets")
    if text.rstrip().endswith((":", ",", "=", "(")):
        problems.append(f"ends with {text.rstrip()[-1]!r}")
    return problems


def _densify(xy: np.ndarray, step: float = 2.0) -> np.ndarray:
    """Points along the polyline ``xy (M, 2)`` (display pixels) at most ``step`` pixels apart."""
    if len(xy) < 2:
        return xy
    seg = np.diff(xy, axis=0)
    n = np.maximum(1, np.ceil(np.hypot(seg[:, 0], seg[:, 1]) / step).astype(int))
    t = [np.arange(k) / k for k in n]
    pts = [xy[i] + t[i][:, None] * seg[i] for i in range(len(seg))]
    return np.concatenate(pts + [xy[-1:]])


def _data_points(ax) -> np.ndarray:
    """Display coordinates (P, 2) of what an axes shows as data: line vertices and the segments between
    them (every 2 pixels), scatter points, and bars (histograms) on a 2-pixel grid.

    Contours, ellipses and filled areas (``fill_between``) are model overlays and are not counted.
    """
    pts = []
    for line in ax.get_lines():
        if not line.get_visible():
            continue
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), float))
        xy = xy[np.all(np.isfinite(xy), axis=1)]
        if line.get_linestyle() not in ("None", "", " ", "none"):
            xy = _densify(xy)
        pts.append(xy)
    for col in ax.collections:
        if isinstance(col, PathCollection) and not isinstance(col, ContourSet) and col.get_visible():
            off = np.asarray(col.get_offsets(), float)
            if off.size:
                xy = col.get_offset_transform().transform(off)
                pts.append(xy[np.all(np.isfinite(xy), axis=1)])
    for patch in ax.patches:
        if isinstance(patch, Rectangle) and patch.get_visible() and patch.get_height() != 0:
            box = patch.get_window_extent()  # the whole bar, on a 2-pixel grid
            gx = np.linspace(box.x0, box.x1, max(2, int(box.width // 2) + 1))
            gy = np.linspace(box.y0, box.y1, max(2, int(box.height // 2) + 1))
            pts.append(np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2))
    if not pts:
        return np.zeros((0, 2))
    pts = np.concatenate(pts)
    return pts[_inside(ax.bbox, pts, 0.0)]


def _inside(box, pts: np.ndarray, margin: float) -> np.ndarray:
    """Which of the display points ``pts (P, 2)`` lie inside ``box`` shrunk by ``margin`` pixels."""
    return ((pts[:, 0] > box.x0 + margin) & (pts[:, 0] < box.x1 - margin)
            & (pts[:, 1] > box.y0 + margin) & (pts[:, 1] < box.y1 - margin))


def _covered(legend, pts: np.ndarray, margin: float = 1.0) -> int:
    """How many of the display points ``pts`` the legend's box covers (``margin`` pixels of grace)."""
    return int(np.sum(_inside(legend.get_window_extent(), pts, margin)))


def check_figure(fig) -> list[str]:
    """The figure rules; returns the problems found (an empty list: the figure is fine).

    * every axes that shows data with its axis visible has an x and a y label (an axes sharing an
      axis with a labelled one counts as labelled: shared panels label the outer ones only);
      every colorbar has a label;
    * titles (axes titles and the suptitle) have balanced, non-empty brackets, do not use ``=`` and
      then ``:`` inside one bracket, and do not end in a separator (``:``, ``,``, ``=``);
    * a legend covers no data: no scatter point, line (vertices and the segments between them) or
      part of a histogram bar lies under it;
    * filled contours reach the data's maximum (``extend="max"`` or a top level at or above it),
      so that peaks are not left as white holes.

    Draws the figure once (without rendering) to know where legends and texts are placed.
    """
    fig.draw_without_rendering()
    problems = []
    suptitle = fig.get_suptitle() if hasattr(fig, "get_suptitle") else ""
    for p in _title_problems(suptitle) if suptitle else []:
        problems.append(f"suptitle {suptitle!r}: {p}")
    for i, ax in enumerate(fig.axes):
        title = " / ".join(t for t in (ax.get_title("left"), ax.get_title(), ax.get_title("right")) if t)
        name = f"axes {i}" + (f" ({title!r})" if title else "")
        for p in _title_problems(title):
            problems.append(f"{name}: title {p}")
        cbar = getattr(ax, "_colorbar", None)
        if cbar is not None:
            if not (ax.get_ylabel() if cbar.orientation == "vertical" else ax.get_xlabel()):
                problems.append(f"{name}: colorbar without a label (cbar.set_label / fig.colorbar(..., label=...))")
            continue
        if not ax.get_visible():
            continue
        if ax.axison and ax.has_data():
            for axis, group in (("x", ax.get_shared_x_axes()), ("y", ax.get_shared_y_axes())):
                if not any(a.get_xlabel() if axis == "x" else a.get_ylabel() for a in group.get_siblings(ax)):
                    problems.append(f"{name}: no {axis}label")  # siblings include ax itself
        for child in ax.get_children():
            if isinstance(child, ContourSet) and child.filled and child.extend not in ("max", "both"):
                if float(child.zmax) > float(child.levels[-1]):
                    problems.append(f"{name}: filled contours stop at {float(child.levels[-1]):.4g} below the maximum "
                                    f"{float(child.zmax):.4g}: the peaks stay white (use extend='max')")
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            n = _covered(legend, _data_points(ax))
            if n:
                problems.append(f"{name}: the legend covers {n} data point(s) or pixels of data lines; move it "
                                "(loc='best', or plotting.legend_outside)")
    for legend in fig.legends:
        n = sum(_covered(legend, _data_points(ax)) for ax in fig.axes if getattr(ax, "_colorbar", None) is None)
        if n:
            problems.append(f"figure legend covers {n} data point(s)")
    return problems
