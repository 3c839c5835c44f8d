"""Procedural sprites (jaxgen.data.sprites): addressing, sampling, and the geometry of the images."""
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxgen.data import SPRITE_FACTOR_SIZES, SPRITE_FACTORS, Sprites, make_sprites
from jaxgen.data import sprites as sprites_module

SP = Sprites()
S = 64
H = sprites_module._H
MARGIN = math.sqrt(2) * H + 1 / S
STEP_PX = (1 - 2 * MARGIN) * S / 31  # centre displacement per x / y index, in pixels


def render(rows):
    return np.asarray(SP.render(np.asarray(rows, np.int32)))[..., 0]


def centroid(img):
    r, c = np.nonzero(img)
    return r.mean(), c.mean()


# ------------------------------------------------------------------------------ basics
def test_spec_constants_and_counts():
    assert SPRITE_FACTORS == ("shape", "scale", "orientation", "x", "y")
    assert SPRITE_FACTOR_SIZES == (3, 6, 40, 32, 32)
    assert SP.n_combinations == 737_280
    assert [SP.axis(n) for n in SPRITE_FACTORS] == [0, 1, 2, 3, 4]


def test_sample_shapes_dtype_values():
    images, factors = SP.sample(jax.random.key(0), 50)
    assert images.shape == (50, S, S, 1) and images.dtype == jnp.uint8
    assert factors.shape == (50, 5) and factors.dtype == jnp.int32
    im = np.asarray(images)
    assert set(np.unique(im)) == {0, 255}
    assert (im.reshape(50, -1).max(axis=1) == 255).all()  # every image shows a sprite
    f = np.asarray(factors)
    assert (f >= 0).all() and (f < np.array(SPRITE_FACTOR_SIZES)).all()
    np.testing.assert_array_equal(im, np.asarray(SP.render(factors)))
    small, _ = make_sprites(jax.random.key(0), 4, image_size=32)
    assert small.shape == (4, 32, 32, 1)


def test_deterministic_from_key():
    a, fa = make_sprites(jax.random.key(3), 64)
    b, fb = make_sprites(jax.random.key(3), 64)
    c, fc = make_sprites(jax.random.key(4), 64)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(fa), np.asarray(fb))
    assert not np.array_equal(np.asarray(fa), np.asarray(fc))


def test_render_jit_and_vmap():
    f = SP.sample_factors(jax.random.key(1), 12)
    ref = np.asarray(SP.render(f))
    np.testing.assert_array_equal(np.asarray(jax.jit(SP.render)(f)), ref)
    np.testing.assert_array_equal(np.asarray(jax.vmap(SP.render)(f.reshape(3, 4, 5))).reshape(ref.shape), ref)
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda g: SP.factors_at(SP.index(g)))(f)), np.asarray(f))


def test_values():
    v = np.asarray(SP.values(np.array([[0, 0, 0, 0, 0], [2, 5, 10, 31, 16]])))
    np.testing.assert_allclose(v[0], [0, 0.5, 0, 0, 0], atol=1e-7)
    np.testing.assert_allclose(v[1], [2, 1.0, np.pi / 2, 1.0, 16 / 31], rtol=1e-6)


# ------------------------------------------------------------------------------ addressing
def test_index_round_trip_random_and_boundary():
    rand = np.asarray(SP.sample_factors(jax.random.key(2), 1000))
    corners = np.array(list(itertools.product(*[(0, n - 1) for n in SPRITE_FACTOR_SIZES])), np.int32)
    for f in (rand, corners):
        idx = np.asarray(SP.index(f))
        np.testing.assert_array_equal(idx, np.ravel_multi_index(f.T, SPRITE_FACTOR_SIZES))  # independent reference
        np.testing.assert_array_equal(np.asarray(SP.factors_at(idx)), f)
    assert SP.index(corners[:1])[0] == 0 and SP.index(corners[-1:])[0] == SP.n_combinations - 1
    # a bijection over all 737 280 combinations
    every = np.arange(SP.n_combinations, dtype=np.int32)
    np.testing.assert_array_equal(np.asarray(SP.index(SP.factors_at(every))), every)


def test_sample_factors_uniform():
    # chi-square goodness of fit of each column (and of the (shape, scale) pairs) to uniform;
    # seeded, so deterministic; a bias of a few % at n = 60 000 would give p < 1e-4
    f = np.asarray(SP.sample_factors(jax.random.key(7), 60_000))
    for k, n in enumerate(SPRITE_FACTOR_SIZES):
        counts = np.bincount(f[:, k], minlength=n)
        assert len(counts) == n
        assert stats.chisquare(counts).pvalue > 1e-3, (SPRITE_FACTORS[k], counts)
    pairs = np.bincount(f[:, 0] * 6 + f[:, 1], minlength=18)
    assert stats.chisquare(pairs).pvalue > 1e-3
    assert abs(np.corrcoef(f[:, 3], f[:, 4])[0, 1]) < 0.02


# ------------------------------------------------------------------------------ geometry
@pytest.mark.parametrize("shape", [0, 1, 2])
def test_centre_of_mass_moves_monotonically(shape):
    for scale, orient in [(0, 0), (5, 7), (3, 23)]:
        xs = render([[shape, scale, orient, i, 12] for i in range(32)])
        ys = render([[shape, scale, orient, 20, i] for i in range(32)])
        cx = np.array([centroid(im) for im in xs])  # (32, 2) (row, col)
        cy = np.array([centroid(im) for im in ys])
        assert (np.diff(cx[:, 1]) > 0).all() and (np.diff(cy[:, 0]) > 0).all()
        # the total travel matches the geometry (31 steps of STEP_PX) within half a pixel
        assert abs(cx[-1, 1] - cx[0, 1] - 31 * STEP_PX) < 0.5
        assert abs(cy[-1, 0] - cy[0, 0] - 31 * STEP_PX) < 0.5
        # moving in x leaves the row of the centre (nearly) alone, and vice versa
        assert np.ptp(cx[:, 0]) < 0.6 and np.ptp(cy[:, 1]) < 0.6


def test_square_area_and_scale_ratios():
    scales = np.linspace(0.5, 1, 6)
    sq = render([[0, i, 0, 16, 16] for i in range(6)]).astype(bool)
    for i in range(6):
        side = 2 * H * scales[i] * S  # in px; an axis-aligned square covers (side +- 1)^2 pixel centres
        assert abs(sq[i].sum() - side**2) <= 2 * side + 1, (i, sq[i].sum(), side**2)
    # averaged over orientations and positions, pixel counts scale as the squared scale (within 3 %)
    # and match the closed-form areas (within 3 %)
    areas = {0: 4 * H**2, 1: np.pi * 1.4 * 0.7 * H**2, 2: 3.6620 * sprites_module._HEART_UNIT**2}
    for shape in range(3):
        rows = [[shape, i, o, x, 10] for i in range(6) for o in range(40) for x in (3, 17)]
        counts = render(rows).astype(bool).reshape(6, 80, -1).sum(-1).mean(-1)
        np.testing.assert_allclose(counts / counts[0], (scales / scales[0]) ** 2, rtol=0.03)
        np.testing.assert_allclose(counts, areas[shape] * (scales * S) ** 2, rtol=0.03)


def test_rotation_symmetries():
    rows = [[s, sc, o, x, y] for s in range(3) for sc in (0, 5) for o in range(40) for x, y in [(5, 9), (30, 2)]]
    im = render(rows).reshape(3, 2, 40, 2, S, S)
    o = np.arange(40)
    # square: a quarter turn, ellipse: a half turn give the same image (exactly)
    np.testing.assert_array_equal(im[0], im[0][:, (o + 10) % 40])
    np.testing.assert_array_equal(im[1], im[1][:, (o + 20) % 40])
    # ... but an eighth turn of the square, a quarter turn of the ellipse, any turn of the heart does not
    assert (im[0] != im[0][:, (o + 5) % 40]).any(axis=(-1, -2)).all()
    assert (im[1] != im[1][:, (o + 10) % 40]).any(axis=(-1, -2)).all()
    for d in (10, 20):
        assert (im[2] != im[2][:, (o + d) % 40]).any(axis=(-1, -2)).all()


@pytest.mark.parametrize("shape", [0, 1, 2])
def test_turning_the_image_is_turning_the_sprite(shape):
    # np.rot90 (a quarter turn counter-clockwise about the image centre) of the sprite at (x, y) with
    # orientation k is the sprite at (y, 31 - x) with orientation k - 10; up to pixel-centre ties
    combos = [(sc, o, x, y) for sc, o, x, y in [(0, 0, 0, 0), (5, 3, 31, 7), (2, 17, 12, 25), (4, 38, 29, 30)]]
    a = render([[shape, sc, o, x, y] for sc, o, x, y in combos])
    b = render([[shape, sc, (o - 10) % 40, y, 31 - x] for sc, o, x, y in combos])
    for i in range(len(combos)):
        assert (np.rot90(a[i]) != b[i]).sum() <= 2, combos[i]
        assert (a[i] != b[i]).sum() > 10  # the test is not trivially satisfied


def test_every_factor_step_changes_the_image():
    period = {0: 10, 1: 20, 2: 40}
    for x, y in [(0, 31), (15, 16)]:
        im = render([[s, sc, o, x, y] for s in range(3) for sc in range(6) for o in range(40)]).reshape(3, 6, 40, -1)
        for s in range(3):
            p = period[s]
            distinct = im[s, :, :p]  # (6, p, S*S): within a symmetry period all orientations differ
            for i, j in itertools.combinations(range(p), 2):
                assert (distinct[:, i] != distinct[:, j]).any(axis=-1).all(), (s, i, j)
        assert (im[:, 1:] != im[:, :-1]).any(axis=-1).all()  # scale steps
        assert (im[0] != im[1]).any(-1).all() and (im[1] != im[2]).any(-1).all() and (im[0] != im[2]).any(-1).all()
    for s, sc, o in [(0, 0, 0), (1, 0, 5), (2, 0, 13), (2, 5, 31)]:
        for axis in (3, 4):
            rows = np.tile([s, sc, o, 9, 9], (32, 1))
            rows[:, axis] = np.arange(32)
            im = render(rows).reshape(32, -1)
            assert (im[1:] != im[:-1]).any(axis=-1).all()


def test_sprite_inside_for_all_extreme_combos():
    rows = [[s, sc, o, x, y] for s in range(3) for sc in (0, 5) for o in range(40) for x in (0, 31) for y in (0, 31)]
    im = render(rows)
    border = np.concatenate([im[:, 0], im[:, -1], im[:, :, 0], im[:, :, -1]], axis=1)
    assert (border == 0).all()
    # the extreme sprites are whole: as many pixels as the same sprite in the middle up to the
    # sub-pixel sampling of the edge (measured: at most 8.2 %, the smallest ellipse)
    mid = render([[s, sc, o, 16, 15] for s, sc, o, _, _ in rows])
    ratio = (im > 0).sum((1, 2)) / (mid > 0).sum((1, 2))
    assert np.abs(ratio - 1).max() < 0.12


def test_coarser_grid_is_a_subgrid():
    coarse = Sprites(factor_sizes=(3, 6, 40, 16, 16))
    assert coarse.n_combinations == 3 * 6 * 40 * 16 * 16
    a = np.asarray(coarse.render(np.array([[2, 3, 7, 15, 0], [1, 0, 9, 0, 15]])))
    b = np.asarray(SP.render(np.array([[2, 3, 7, 31, 0], [1, 0, 9, 0, 31]])))
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------ bad input
def test_bad_input():
    with pytest.raises(ValueError, match="unknown factor 'colour'.*shape.*scale.*orientation"):
        SP.axis("colour")
    good = np.zeros((2, 5), np.int32)
    with pytest.raises(ValueError, match="integer factor indices.*float32"):
        SP.render(good.astype(np.float32))
    with pytest.raises(ValueError, match=r"shape \(N, 5\).*got shape \(2, 4\)"):
        SP.render(good[:, :4])
    with pytest.raises(ValueError, match=r"factors\[None\]"):
        SP.index(good[0])
    with pytest.raises(ValueError, match=r"'x'.*\[0, 31\].*\[32, 32\]"):
        SP.render(np.array([[0, 0, 0, 32, 0]]))
    with pytest.raises(ValueError, match=r"'orientation'.*\[0, 39\].*\[-1, 0\]"):
        SP.values(np.array([[0, 0, -1, 0, 0], [0, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="factors is None"):
        SP.render(None)
    with pytest.raises(ValueError, match="integer factor indices"):
        SP.render(good.astype(bool))
    with pytest.raises(ValueError, match=r"index must lie in \[0, 737279\]"):
        SP.factors_at(np.array([737_280]))
    with pytest.raises(ValueError, match="1-D integer"):
        SP.factors_at(np.array([0.0]))
    with pytest.raises(ValueError, match="PRNG key"):
        SP.sample_factors(0, 3)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        SP.sample(jax.random.key(0), 0)
    with pytest.raises(ValueError, match="3 shapes"):
        Sprites(factor_sizes=(4, 6, 40, 32, 32))
    with pytest.raises(ValueError, match="factor_names are fixed"):
        Sprites(factor_names=("a", "b", "c", "d", "e"))
    with pytest.raises(ValueError, match="image_size"):
        Sprites(image_size=8)
