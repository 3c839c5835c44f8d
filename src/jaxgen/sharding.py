"""Data parallelism over rows: one mesh axis ``"data"``, rows padded to a multiple of the devices.

Models that reduce over samples (EM sufficient statistics, mini-batch gradients) take row-sharded
arrays from :func:`shard_rows` together with the per-row weights it returns (1 for real rows, 0 for
the padding), and run their per-device work under ``jax.shard_map`` with a ``psum`` over the
``"data"`` axis, so no device ever holds the whole data set.

Multi-host: call ``jax.distributed.initialize()`` (JAX's own mechanism) in every process before
creating arrays; :func:`data_mesh` over ``jax.devices()`` then spans all hosts. ``shard_rows`` as
written places a host-local array, so on several hosts each process must build its part with
``jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), local_rows)`` instead.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxgen.validation import float_dtype

__all__ = ["DATA_AXIS", "data_mesh", "shard_rows", "row_sharding_of"]

DATA_AXIS = "data"


def data_mesh(devices=None, axis_name: str = DATA_AXIS) -> Mesh:
    """A 1-D mesh over ``devices`` (default: all devices, ``jax.devices()``) named ``axis_name``."""
    devs = list(jax.devices() if devices is None else devices)
    if not devs:
        raise ValueError("data_mesh needs at least one device.")
    return Mesh(np.array(devs), (axis_name,))


def shard_rows(x, mesh: Mesh | None = None, *, pad_value=0, axis_name: str | None = None):
    """Pad the rows of ``x`` to a multiple of the mesh size and shard them over the data axis.

    Args:
      x: array of shape (N, ...), NumPy or JAX.
      mesh: a 1-D mesh such as :func:`data_mesh` (default: ``data_mesh()``).
      pad_value: value of the padding rows (they get weight 0, so it only needs to be finite).
      axis_name: mesh axis to shard over (default: the mesh's first axis).

    Returns:
      ``(x_sharded, weights)``: ``x_sharded`` of shape (N_pad, ...) placed with
      ``NamedSharding(mesh, P(axis_name))``, and ``weights`` of shape (N_pad,), 1 for the real rows
      and 0 for the padding, sharded the same way (floating dtype of ``x``).
    """
    mesh = data_mesh() if mesh is None else mesh
    axis_name = mesh.axis_names[0] if axis_name is None else axis_name
    n_dev = mesh.shape[axis_name]
    arr = np.asarray(x) if not isinstance(x, jax.Array) else x
    if arr.ndim < 1:
        raise ValueError(f"shard_rows needs an array with a row axis, got shape {arr.shape}.")
    n = arr.shape[0]
    pad = (-n) % n_dev
    xp = jnp if isinstance(arr, jax.Array) else np
    if pad:
        filler = xp.full((pad,) + tuple(arr.shape[1:]), pad_value, dtype=arr.dtype)
        arr = xp.concatenate([arr, filler], axis=0)
    wdtype = float_dtype(arr.dtype if np.issubdtype(np.dtype(arr.dtype), np.floating) else None)
    weights = np.concatenate([np.ones(n, wdtype), np.zeros(pad, wdtype)])
    sharding = NamedSharding(mesh, P(axis_name))
    return jax.device_put(arr, sharding), jax.device_put(weights, sharding)


def row_sharding_of(x) -> tuple[Mesh, str] | None:
    """``(mesh, axis_name)`` when ``x`` is a JAX array whose rows are split over >1 devices, else None."""
    if not isinstance(x, jax.Array):
        return None
    sh = getattr(x, "sharding", None)
    if not isinstance(sh, NamedSharding) or len(sh.spec) == 0 or sh.spec[0] is None:
        return None
    axis = sh.spec[0]
    if isinstance(axis, tuple):
        if len(axis) != 1:
            raise ValueError(f"rows sharded over several mesh axes {axis} are not supported; use one data axis.")
        axis = axis[0]
    if sh.mesh.shape[axis] == 1:
        return None
    if any(s is not None for s in tuple(sh.spec)[1:]):
        raise ValueError(f"only the row axis may be sharded, got spec {sh.spec}.")
    return sh.mesh, axis
