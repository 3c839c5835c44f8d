"""Brendan Frey's face video frames (Roweis' ``frey_rawface.mat``): 1965 grey faces of 28 x 20 pixels.

The MATLAB file holds one variable ``ff`` of shape (560, 1965), uint8; each column is one frame.
In MATLAB the conventional view is ``reshape(ff(:, i), 20, 28)'`` (column-major fill, then a
transpose), which is the same as NumPy's row-major ``ff[:, i].reshape(28, 20)``: 28 rows
(height) by 20 columns (width), face upright.

No trustworthy published sha256 exists for this file (see the registry note in
:mod:`jaxgen.data.files`), so it is verified by structure: variable name, shape and dtype.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxgen.data.files import locate

__all__ = ["FREY_SHAPE", "check_frey_file", "load_frey"]

FREY_SHAPE = (1965, 28, 20)
_N_FRAMES, _HEIGHT, _WIDTH = FREY_SHAPE


def _read_ff(path) -> np.ndarray:
    import scipy.io  # loadmat reads MATLAB arrays directly; it never unpickles

    mat = scipy.io.loadmat(str(path), variable_names=["ff"])
    if "ff" not in mat:
        raise ValueError("no MATLAB variable 'ff' in the file")
    return mat["ff"]


def check_frey_file(path) -> None:
    """Raise ``ValueError`` unless ``path`` is a MATLAB file with ``ff`` uint8 of shape (560, 1965)."""
    ff = _read_ff(path)
    expected = (_HEIGHT * _WIDTH, _N_FRAMES)
    if ff.dtype != np.uint8 or ff.shape != expected:
        raise ValueError(f"variable 'ff' is {ff.dtype} {ff.shape}, expected uint8 {expected}")


def load_frey(*, data_dir=None, download: bool = False) -> np.ndarray:
    """Load the Frey faces.

    Args:
      data_dir: folder holding ``frey_rawface.mat``; default :func:`jaxgen.data.data_dir`.
      download: fetch the file from Roweis' page if it is missing.

    Returns:
      uint8 array of shape (1965, 28, 20): frames in video order, pixels 0..255, rows top to bottom.

    Raises:
      DataFileError: the file is missing or malformed (wrong variable, shape or dtype).
    """
    path = Path(locate("frey_rawface.mat", data_dir=data_dir, download=download))
    ff = _read_ff(path)  # locate() has checked name, shape and dtype
    return np.ascontiguousarray(ff.T.reshape(FREY_SHAPE))
