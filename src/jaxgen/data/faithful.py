"""Old Faithful geyser data (Azzalini & Bowman 1990; R's ``datasets::faithful``), bundled with jaxgen."""
from __future__ import annotations

import importlib.resources

import numpy as np

from jaxgen.data.files import verify

__all__ = ["load_faithful"]

_NAMES = ("eruptions", "waiting")


def load_faithful(*, return_names: bool = False):
    """The 272 Old Faithful eruptions, in raw units (minutes).

    The CSV ships inside the package (``jaxgen/data/resources/faithful.csv``); its sha256 is
    verified like any other data file.

    Args:
      return_names: also return the column names.

    Returns:
      ``X`` float64 array of shape (272, 2), columns (eruption duration, waiting time to the next
      eruption); with ``return_names``, the tuple ``(X, ("eruptions", "waiting"))``.
    """
    resource = importlib.resources.files("jaxgen.data") / "resources" / "faithful.csv"
    with importlib.resources.as_file(resource) as path:
        verify("faithful.csv", path)
        with open(path) as f:
            header = f.readline().strip().split(",")
            if tuple(header) != _NAMES:  # guaranteed by the digest; a cheap guard against a stale registry
                raise ValueError(f"{path}: unexpected header {header}, expected {list(_NAMES)}")
            X = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
    return (X, _NAMES) if return_names else X
