"""Data: checksummed loaders for real data sets, synthetic generators with ground truth, batching.

Real data (NumPy arrays at the boundary):
  :func:`load_faithful` (bundled), :func:`load_digits` (scikit-learn's copy), :func:`load_mnist`,
  :func:`load_frey` (files in :func:`data_dir`, i.e. ``$JAXGEN_DATA_DIR``, verified on every load).
Image helpers: :func:`to_float`, :func:`binarize` (in :mod:`jaxgen.data.images`).
Files: :data:`REGISTRY`, :func:`download`, :class:`DataFileError` (in :mod:`jaxgen.data.files`).
Synthetic (JAX arrays, explicit keys): :func:`make_blobs`, :func:`make_subspace`, :func:`make_ring`,
  :func:`make_grid`, plus :func:`batches` / :func:`epoch_batches`.
Stacked MNIST (three digits as RGB channels, 1000 modes): :func:`make_stacked_mnist`, :func:`stack_digits`.
Sprites (dSprites-like 64x64 binary images with 5 known factors, rendered on demand): :class:`Sprites`,
  :func:`make_sprites`, :data:`SPRITE_FACTORS`, :data:`SPRITE_FACTOR_SIZES`.
"""
from jaxgen.data.digits import load_digits
from jaxgen.data.faithful import load_faithful
from jaxgen.data.files import REGISTRY, DataFile, DataFileError, data_dir, download, locate, sha256_file, verify
from jaxgen.data.frey import load_frey
from jaxgen.data.images import binarize, to_float
from jaxgen.data.mnist import MNIST_SPLITS, load_mnist, read_idx
from jaxgen.data.sprites import SPRITE_FACTOR_SIZES, SPRITE_FACTORS, Sprites, make_sprites
from jaxgen.data.stacked import N_STACKED_MODES, make_stacked_mnist, stack_digits, stacked_mode_id
from jaxgen.data.synthetic import (
    SubspaceData,
    batches,
    epoch_batches,
    grid_modes,
    make_blobs,
    make_grid,
    make_ring,
    make_subspace,
    ring_modes,
)

__all__ = [
    "MNIST_SPLITS",
    "N_STACKED_MODES",
    "REGISTRY",
    "SPRITE_FACTORS",
    "SPRITE_FACTOR_SIZES",
    "DataFile",
    "DataFileError",
    "Sprites",
    "SubspaceData",
    "batches",
    "binarize",
    "data_dir",
    "download",
    "epoch_batches",
    "grid_modes",
    "load_digits",
    "load_faithful",
    "load_frey",
    "load_mnist",
    "locate",
    "make_blobs",
    "make_grid",
    "make_ring",
    "make_sprites",
    "make_stacked_mnist",
    "make_subspace",
    "read_idx",
    "ring_modes",
    "sha256_file",
    "stack_digits",
    "stacked_mode_id",
    "to_float",
    "verify",
]
