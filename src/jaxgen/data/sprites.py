"""Procedural dSprites-like sprites: 64 x 64 binary images with known generative factors.

In the spirit of dSprites (Matthey et al. 2017), an image shows one white sprite on black,
fully determined by five integer factor indices (:data:`SPRITE_FACTORS`, sizes
:data:`SPRITE_FACTOR_SIZES`):

=========== ====== ========================================================================
factor      values physical value (:meth:`Sprites.values`)
=========== ====== ========================================================================
shape       3      0 square, 1 ellipse, 2 heart
scale       6      ``linspace(0.5, 1, 6)``
orientation 40     ``2 pi k / 40`` radians, k = 0..39 (half-open: unlike dSprites'
                   ``linspace(0, 2 pi, 40)``, no two indices name the same angle)
x           32     ``linspace(0, 1, 32)``: column of the centre, left to right
y           32     ``linspace(0, 1, 32)``: row of the centre, top to bottom
=========== ====== ========================================================================

Nothing is stored: every one of the 3 * 6 * 40 * 32 * 32 = 737 280 combinations is rendered on
demand by :meth:`Sprites.render`, pure ``jnp`` (jit-able, vmappable, deterministic).

Geometry (lengths in image widths; pixel (row i, column j) has centre ``((j + .5) / S, (i + .5) / S)``).
A pixel is white iff its centre, in the sprite's own frame ``(u, v) = R(-theta) (p - c) / s`` (c the
centre, s the scale, theta the orientation: with y pointing down, a growing theta turns the
sprite clockwise on screen), lies inside the shape:

* square: ``max(|u|, |v|) <= h`` with ``h = 0.14`` (side 17.9 px at scale 1, 9.0 px at scale 0.5);
* ellipse: ``(u / 1.4h)^2 + (v / 0.7h)^2 <= 1``;
* heart: ``(a^2 + b^2 - 1)^3 - a^2 b^3 <= 0`` with ``(a, b) = (u, -v) / k + (0, 0.2935)``, the
  classic implicit heart shifted so that its area centroid is the sprite centre (it then spins about
  its centre of mass), ``k = 1.4h / 1.2935`` so that its farthest point is 1.4h from the centre.

Every shape lies within ``sqrt(2) h s`` of its centre, so the centre ranges over
``[margin, 1 - margin]`` with ``margin = sqrt(2) h + 1 / S``: the sprite never touches the border
at any orientation and never leaves the image. Adjacent x (or y) indices are 1.2 px apart at
S = 64, so every position step changes the image.

Symmetries (as in dSprites): a square rotated by 90 degrees, and an ellipse by 180 degrees, is the
same sprite; the orientation index is reduced modulo 10 (square) or 20 (ellipse) before the angle is
computed, so such images are bitwise identical. Otherwise every change of one factor changes the
image (checked for all shapes, scales and orientation steps in ``tests/test_sprites.py``).

``Sprites(factor_sizes=...)`` gives a coarser grid over the same ranges (e.g. ``(3, 6, 40, 16, 16)``
for quick runs); the factor names are fixed.
"""
from __future__ import annotations

import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.validation import check_key, check_positive_int

__all__ = ["SPRITE_FACTORS", "SPRITE_FACTOR_SIZES", "SPRITE_SHAPES", "Sprites", "make_sprites"]

SPRITE_FACTORS = ("shape", "scale", "orientation", "x", "y")
SPRITE_FACTOR_SIZES = (3, 6, 40, 32, 32)
SPRITE_SHAPES = ("square", "ellipse", "heart")

_H = 0.14  # half side of the square at scale 1, in image widths
_ELLIPSE_AXES = (1.4 * _H, 0.7 * _H)  # semi-axes at scale 1
_HEART_CENTROID = 0.2935  # area centroid of (a^2 + b^2 - 1)^3 <= a^2 b^3 (numerical integration)
_HEART_RADIUS = 1.2935  # its farthest point from the centroid (the tip at b = -1)
_HEART_UNIT = 1.4 * _H / _HEART_RADIUS
_RENDER_CHUNK = 2048  # images rendered per vectorised block (bounds the float temporaries)


def _margin(image_size: int) -> float:
    """Distance of the extreme sprite centres from the border: the largest sprite radius + 1 px."""
    return math.sqrt(2.0) * _H + 1.0 / image_size


def _tables(sizes: tuple) -> tuple[np.ndarray, ...]:
    """Physical values of every index of the scale, orientation and position factors."""
    _, n_scale, n_orient, n_x, n_y = sizes
    return (np.linspace(0.5, 1.0, n_scale), 2 * np.pi * np.arange(n_orient) / n_orient,
            np.linspace(0.0, 1.0, n_x), np.linspace(0.0, 1.0, n_y))


@partial(jax.jit, static_argnames=("image_size", "sizes"))
def _render(factors, image_size: int, sizes: tuple):
    """(N, 5) int32 factor indices -> (N, S, S, 1) uint8 in {0, 255} (no checks: see Sprites.render)."""
    scales, _, xs, ys = (jnp.asarray(t, jnp.float32) for t in _tables(sizes))
    n_orient = sizes[2]
    # a square repeats every quarter turn and an ellipse every half turn: reduce the index first so
    # that symmetric orientations give bitwise identical images
    period = jnp.select([(factors[:, 0] == 0) & (n_orient % 4 == 0), (factors[:, 0] == 1) & (n_orient % 2 == 0)],
                        [n_orient // 4, n_orient // 2], n_orient)
    margin = _margin(image_size)
    grid = (jnp.arange(image_size, dtype=jnp.float32) + 0.5) / image_size

    def one(f):
        shape, scale = f[0], scales[f[1]]
        theta = (2 * jnp.pi / n_orient) * (f[2] % f[5]).astype(jnp.float32)
        cx = margin + (1 - 2 * margin) * xs[f[3]]
        cy = margin + (1 - 2 * margin) * ys[f[4]]
        dx, dy = (grid - cx)[None, :] / scale, (grid - cy)[:, None] / scale  # (1, S) columns, (S, 1) rows
        c, s = jnp.cos(theta), jnp.sin(theta)
        u, v = c * dx + s * dy, c * dy - s * dx  # (S, S): the pixel centres in the sprite's frame
        square = jnp.maximum(jnp.abs(u), jnp.abs(v)) <= _H
        ellipse = (u / _ELLIPSE_AXES[0]) ** 2 + (v / _ELLIPSE_AXES[1]) ** 2 <= 1.0
        a, b = u / _HEART_UNIT, _HEART_CENTROID - v / _HEART_UNIT
        heart = (a * a + b * b - 1.0) ** 3 - a * a * b * b * b <= 0.0
        inside = jnp.where(shape == 0, square, jnp.where(shape == 1, ellipse, heart))
        return jnp.where(inside, jnp.uint8(255), jnp.uint8(0))[..., None]

    f = jnp.concatenate([factors, period[:, None]], axis=1)
    return jax.lax.map(one, f, batch_size=_RENDER_CHUNK)


@dataclasses.dataclass(frozen=True)
class Sprites:
    """Procedural dSprites-like data: 64x64 binary images of a square / ellipse / heart, fully
    determined by 5 integer factor indices; every one of the 3*6*40*32*32 = 737_280 combinations
    is addressable, nothing is stored (see the module docstring for the geometry).

    Attributes:
      image_size: S, the side of the square images (>= 16; the 1-px-per-step guarantees hold at 64).
      factor_names: (K,) = :data:`SPRITE_FACTORS` (fixed).
      factor_sizes: (K,) values per factor; default :data:`SPRITE_FACTOR_SIZES`; shape at most 3.
    """

    image_size: int = 64
    factor_names: tuple = SPRITE_FACTORS
    factor_sizes: tuple = SPRITE_FACTOR_SIZES

    def __post_init__(self):
        check_positive_int(self.image_size, "image_size", minimum=16)
        if tuple(self.factor_names) != SPRITE_FACTORS:
            raise ValueError(f"Sprites' factor_names are fixed to {SPRITE_FACTORS}, got {self.factor_names!r}.")
        sizes = tuple(self.factor_sizes)
        if len(sizes) != len(SPRITE_FACTORS):
            raise ValueError(f"factor_sizes needs one size per factor {SPRITE_FACTORS}, got {self.factor_sizes!r}.")
        for name, n in zip(SPRITE_FACTORS, sizes):
            check_positive_int(n, f"factor_sizes[{name!r}]")
        if sizes[0] > len(SPRITE_SHAPES):
            raise ValueError(f"there are {len(SPRITE_SHAPES)} shapes {SPRITE_SHAPES}, got factor_sizes[shape] = {sizes[0]}.")
        object.__setattr__(self, "factor_names", tuple(self.factor_names))
        object.__setattr__(self, "factor_sizes", tuple(int(n) for n in sizes))

    @property
    def n_combinations(self) -> int:
        """The number of factor combinations, ``prod(factor_sizes)`` (737 280 by default)."""
        return math.prod(self.factor_sizes)

    def axis(self, name: str) -> int:
        """The column of factor ``name`` in a factor array; ValueError naming the valid names."""
        if name not in self.factor_names:
            raise ValueError(f"unknown factor {name!r}: the sprites' factors are {self.factor_names}.")
        return self.factor_names.index(name)

    def check_factors(self, factors, name: str = "factors") -> None:
        """Raise ValueError unless ``factors`` is an (N, K) integer array with every column k in
        ``[0, factor_sizes[k])``. Shape and dtype are checked on traced arrays too, the range only on
        concrete ones (inside ``jit`` it is the caller's job; :meth:`sample_factors` is always valid)."""
        if factors is None:
            raise ValueError(f"{name} is None: pass an (N, {len(self.factor_sizes)}) integer array of factor indices "
                             f"(columns {self.factor_names}), e.g. from Sprites().sample_factors(key, n).")
        shape, dtype = np.shape(factors), getattr(factors, "dtype", None)
        if dtype is None:
            dtype = np.asarray(factors).dtype
        K = len(self.factor_sizes)
        if len(shape) != 2 or shape[1] != K:
            hint = " (one combination? use factors[None])" if len(shape) == 1 and shape[0] == K else ""
            raise ValueError(f"{name} must have shape (N, {K}) with columns {self.factor_names}, got shape {shape}{hint}.")
        if not (np.issubdtype(dtype, np.integer) and dtype != np.bool_):
            raise ValueError(f"{name} must hold integer factor indices, got dtype {dtype}: use index values "
                             f"0..size-1 (see Sprites.values for the physical values), e.g. factors.astype(int).")
        if isinstance(factors, jax.core.Tracer) or shape[0] == 0:
            return
        f = np.asarray(factors)
        lo, hi = f.min(axis=0), f.max(axis=0)
        for k, (nm, n) in enumerate(zip(self.factor_names, self.factor_sizes)):
            if lo[k] < 0 or hi[k] >= n:
                raise ValueError(f"{name}[:, {k}] ({nm!r}) must lie in [0, {n - 1}], got values in [{lo[k]}, {hi[k]}].")

    def render(self, factors) -> jax.Array:
        """The images of ``factors``: (N, K) int -> (N, S, S, 1) uint8 in {0, 255}; pure, jit-able."""
        self.check_factors(factors)
        return _render(jnp.asarray(factors, jnp.int32), self.image_size, self.factor_sizes)

    def sample_factors(self, key, n: int) -> jax.Array:
        """(n, K) int32 factor indices, uniform over all combinations (independent uniform columns)."""
        check_key(key)
        n = check_positive_int(n, "n")
        return jax.random.randint(key, (n, len(self.factor_sizes)), 0, jnp.asarray(self.factor_sizes, jnp.int32),
                                  dtype=jnp.int32)

    def sample(self, key, n: int) -> tuple[jax.Array, jax.Array]:
        """``(images (n, S, S, 1) uint8, factors (n, K) int32)``: random combinations and their images."""
        factors = self.sample_factors(key, n)
        return _render(factors, self.image_size, self.factor_sizes), factors

    def _strides(self) -> np.ndarray:
        # row-major: shape is the most significant digit, y the least (dSprites' ordering)
        return np.array([math.prod(self.factor_sizes[k + 1:]) for k in range(len(self.factor_sizes))], np.int32)

    def index(self, factors) -> jax.Array:
        """(N, K) factor indices -> (N,) int32 flat index in [0, n_combinations) (row-major, y fastest)."""
        self.check_factors(factors)
        return jnp.asarray(factors, jnp.int32) @ jnp.asarray(self._strides())

    def factors_at(self, index) -> jax.Array:
        """(N,) flat indices -> (N, K) int32 factor indices: the inverse of :meth:`index`."""
        shape, dtype = np.shape(index), getattr(index, "dtype", None)
        if dtype is None:
            dtype = np.asarray(index).dtype
        if len(shape) != 1 or not np.issubdtype(dtype, np.integer) or dtype == np.bool_:
            raise ValueError(f"index must be a 1-D integer array of flat indices, got shape {shape} and dtype {dtype}.")
        if not isinstance(index, jax.core.Tracer) and shape[0]:
            i = np.asarray(index)
            if i.min() < 0 or i.max() >= self.n_combinations:
                raise ValueError(f"index must lie in [0, {self.n_combinations - 1}], got values in [{i.min()}, {i.max()}].")
        index = jnp.asarray(index, jnp.int32)
        return (index[:, None] // jnp.asarray(self._strides())) % jnp.asarray(self.factor_sizes, jnp.int32)

    def values(self, factors) -> jax.Array:
        """(N, K) indices -> (N, K) float32 physical values: shape id (0., 1., 2.), scale in [0.5, 1],
        orientation in radians in [0, 2 pi), x and y in [0, 1] (centre position, as dSprites)."""
        self.check_factors(factors)
        f = jnp.asarray(factors, jnp.int32)
        cols = [f[:, 0].astype(jnp.float32)]
        cols += [jnp.asarray(t, jnp.float32)[f[:, k + 1]] for k, t in enumerate(_tables(self.factor_sizes))]
        return jnp.stack(cols, axis=1)


def make_sprites(key, n: int, *, image_size: int = 64) -> tuple[jax.Array, jax.Array]:
    """``n`` random sprites: ``(images (n, S, S, 1) uint8 in {0, 255}, factors (n, 5) int32)``,
    deterministic from ``key`` (``Sprites(image_size).sample(key, n)``)."""
    return Sprites(image_size=image_size).sample(key, n)
