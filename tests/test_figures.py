"""The figure rules (jaxgen.plotting.check_figure) and their enforcement in Run.save_figure.

Each rule is tested on a figure that breaks it (the problem must be reported) and on the same figure
fixed (no problem): a checker that reports nothing, or everything, fails one of the two.
"""
import ml_collections
import numpy as np
import pytest

from jaxgen import plotting, runner


def _scatter_everywhere(ax, n=400, seed=0):
    """Points spread over the whole axes, so that any legend inside it covers some."""
    pts = np.random.default_rng(seed).uniform(0, 1, (n, 2))
    ax.scatter(*pts.T, s=4, label="data")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)


def _close(fig):
    plotting.plt.close(fig)


def test_a_good_figure_has_no_problem():
    fig, (ax0, ax1) = plotting.subplots(1, 2)
    _scatter_everywhere(ax0)
    ax0.plot([0, 1], [0, 1], label="y = x")
    ax0.set_xlabel("x (m)")
    ax0.set_ylabel("y (m)")
    ax0.set_title("P(2 clusters occupied) = 1.00 (alpha0 = 1e-3, sparse)")
    plotting.legend_outside(ax0, "right")
    ax1.imshow(np.eye(4))  # an image panel with its axis off needs no labels
    ax1.axis("off")
    assert plotting.check_figure(fig) == []
    _close(fig)


def test_missing_axis_labels_are_reported_and_shared_axes_count_as_labelled():
    fig, axes = plotting.subplots(1, 3, sharey=True)
    for ax in axes:
        ax.plot([0, 1], [1, 2])
    axes[0].set_xlabel("x")
    axes[0].set_ylabel("y")  # labels the shared y axis of all three panels
    axes[1].set_xlabel("x")
    problems = plotting.check_figure(fig)
    assert problems == ["axes 2: no xlabel"]
    axes[2].set_xlabel("x")
    assert plotting.check_figure(fig) == []
    _close(fig)


def test_an_axes_without_data_or_with_its_axis_off_is_not_checked():
    fig, (ax0, ax1) = plotting.subplots(1, 2)
    ax1.plot([0, 1], [0, 1])
    ax1.axis("off")
    assert plotting.check_figure(fig) == []  # ax0 is empty, ax1 hides its axes
    _close(fig)


def test_a_colorbar_needs_a_label():
    fig, ax = plotting.subplots()
    im = ax.imshow(np.random.default_rng(0).uniform(size=(5, 5)))
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    cb = fig.colorbar(im, ax=ax)
    assert plotting.check_figure(fig) == ["axes 1: colorbar without a label (cbar.set_label / fig.colorbar(..., label=...))"]
    cb.set_label("value")
    assert plotting.check_figure(fig) == []
    _close(fig)


@pytest.mark.parametrize("title, expected", [
    ("P(occupied = 2: 1.00)", "mixes '=' and ':'"),  # the title the rule was written for
    ("angle (deg", "unclosed '('"),
    ("angle deg)", "unbalanced ')'"),
    ("weights [a, b)", "unbalanced ')'"),
    ("f() of x", "empty brackets"),
    ("components:", "ends with ':'"),
])
def test_malformed_titles_are_reported(title, expected):
    fig, ax = plotting.subplots()
    ax.set_title(title)
    problems = plotting.check_figure(fig)
    assert len(problems) == 1 and expected in problems[0], problems
    _close(fig)


@pytest.mark.parametrize("title", ["P(2 clusters occupied) = 1.00", "occupied clusters: P(2) = 0.68, P(3) = 0.28",
                                   "alpha0 = 0.001: 2 components used", "co-clustering P(z_i = z_j) [sorted]",
                                   "fit (a = 1, b: 2)", "$\\mathcal{N}(0, 1)$ prior"])
def test_well_formed_titles_pass(title):
    fig, ax = plotting.subplots()
    ax.set_title(title)
    fig.suptitle(title)
    assert plotting.check_figure(fig) == []
    _close(fig)


def test_a_malformed_suptitle_is_reported():
    fig, ax = plotting.subplots()
    fig.suptitle("runs (2 of 3")
    assert plotting.check_figure(fig) == ["suptitle 'runs (2 of 3': unclosed '('"]
    _close(fig)


@pytest.mark.parametrize("draw", ["scatter", "line", "hist"])
def test_a_legend_over_data_is_reported_and_one_beside_the_axes_is_not(draw):
    fig, ax = plotting.subplots()
    if draw == "scatter":
        _scatter_everywhere(ax)
    elif draw == "line":  # two vertices only: the segment between them passes under the legend
        ax.plot([0, 1], [0.5, 0.5], label="a line")
    else:
        plotting.hist(ax, np.random.default_rng(0).uniform(0, 1, 5000), bins=10, label="uniform")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(loc="center")
    problems = plotting.check_figure(fig)
    assert len(problems) == 1 and "the legend covers" in problems[0], problems
    plotting.legend_outside(ax, "below")
    assert plotting.check_figure(fig) == []
    _close(fig)


def test_a_legend_in_an_empty_corner_passes():
    fig, ax = plotting.subplots()
    x = np.linspace(0, 1, 50)
    ax.plot(x, x ** 2, "o", label="points near the diagonal's lower half")
    ax.set_ylim(0, 2)  # the upper left is empty
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(loc="upper left")
    assert plotting.check_figure(fig) == []
    _close(fig)


def _gaussian_log_density(P):
    return -0.5 * np.sum(P ** 2, axis=1)


def _peak_pixel(fig, ax):
    """RGB of the rendered pixel at data point (0.45, 0.35), near the peak at 0 (off the grid lines)."""
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    x, y = ax.transData.transform((0.45, 0.35))
    return rgba[int(round(rgba.shape[0] - y)), int(round(x)), :3]


def test_filled_density_contours_fill_the_peak():
    """The 2-D GMM figure left white holes at its peaks: levels stopped below the maximum."""
    fig, ax = plotting.subplots()
    cs = plotting.density_contours(ax, _gaussian_log_density, (-3, 3), (-3, 3), levels=6, filled=True)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    fig.colorbar(cs, ax=ax, label="log density")
    assert plotting.check_figure(fig) == []
    assert not np.all(_peak_pixel(fig, ax) == 255)  # coloured, not white
    _close(fig)


def test_filled_contours_stopping_below_the_maximum_are_reported():
    fig, ax = plotting.subplots()
    xx, yy, lp = plotting.grid_eval(_gaussian_log_density, (-3, 3), (-3, 3))
    ax.contourf(xx, yy, lp, levels=np.linspace(-6, -1, 6))  # the old code: the top level is below the max 0
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    problems = plotting.check_figure(fig)
    assert len(problems) == 1 and "the peaks stay white" in problems[0], problems
    assert np.all(_peak_pixel(fig, ax) == 255)  # the white hole the rule is about
    _close(fig)


def test_legend_outside_rejects_an_unknown_place():
    fig, ax = plotting.subplots()
    ax.plot([0, 1], [0, 1], label="a")
    with pytest.raises(ValueError, match="where must be 'right' or 'below'"):
        plotting.legend_outside(ax, "left")
    _close(fig)


def _bad_figure():
    fig, ax = plotting.subplots()
    ax.plot([0, 1], [0, 1])
    return fig


def _run(tmp_path, quick):
    return runner.Run("demo", tmp_path, ml_collections.ConfigDict({"seed": 0}), quick=quick, echo=False)


def test_a_quick_run_fails_on_a_bad_figure_but_keeps_it(tmp_path):
    run = _run(tmp_path, quick=True)
    with pytest.raises(plotting.FigureRuleError, match="bad.png breaks the figure rules: axes 0: no xlabel; axes 0: no ylabel"):
        run.save_figure(_bad_figure(), "bad")
    assert (tmp_path / "bad.png").is_file()  # saved first, so that it can be looked at
    run.close()


def test_a_full_run_logs_a_bad_figure_as_a_warning(tmp_path):
    run = _run(tmp_path, quick=False)
    run.save_figure(_bad_figure(), "bad")
    run.close()
    assert (tmp_path / "bad.png").is_file()
    assert "warning: figure bad.png breaks the figure rules: axes 0: no xlabel" in (tmp_path / "log.txt").read_text()


def test_a_good_figure_saves_silently(tmp_path):
    run = _run(tmp_path, quick=True)
    fig = _bad_figure()
    fig.axes[0].set_xlabel("x")
    fig.axes[0].set_ylabel("y")
    run.save_figure(fig, "good")
    run.close()
    assert "warning" not in (tmp_path / "log.txt").read_text()


# ------------------------------------------------------------------------------ helpers of tables and figures
def test_a_latent_grid_has_its_latent_values_on_labelled_axes():
    """The VAE manifold: decoder outputs on a grid of z, each labelled tick at the centre of the cell
    of that value (so the axes read as z, not as pixels), and the figure rules hold."""
    H, W, pad = 4, 3, 1
    z1, z2 = np.linspace(-2, 2, 5), np.linspace(1.5, -1.5, 4)
    images = np.random.default_rng(0).uniform(0, 1, (len(z1) * len(z2), H * W))
    fig, ax = plotting.subplots()
    plotting.show_latent_grid(ax, images, z1, z2, (H, W), "decoder means on a grid of z")
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("z_1", "z_2") and ax.axison
    np.testing.assert_allclose(ax.get_xticks(), np.arange(5) * (W + pad) + (W - 1) / 2)
    np.testing.assert_allclose(ax.get_yticks(), np.arange(4) * (H + pad) + (H - 1) / 2)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["-2", "-1", "0", "1", "2"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["1.5", "0.5", "-0.5", "-1.5"]
    assert plotting.check_figure(fig) == []
    ax.set_xlabel("")  # what the manifold figure was: an image grid without axis labels
    assert plotting.check_figure(fig) == ["axes 0 ('decoder means on a grid of z'): no xlabel"]
    _close(fig)
    fig, ax = plotting.subplots()  # a dense grid: at most max_ticks labelled values, every k-th cell
    plotting.show_latent_grid(ax, np.zeros((400, H * W)), np.arange(20), np.arange(20), (H, W), "dense")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "3", "6", "9", "12", "15", "18"]
    _close(fig)


def test_a_single_seed_has_no_spread_to_print():
    assert plotting.mean_std(1.23456, 0.0, 1) == "1.235"
    assert plotting.mean_std(1.23456, 0.0412, 3) == "1.235 ± 0.041"
    assert plotting.mean_std(91.834, 0.27, 2, digits=2) == "91.83 ± 0.27"
    assert (plotting.over_seeds(1), plotting.over_seeds(3)) == ("one seed", "mean ± std over 3 seeds")
