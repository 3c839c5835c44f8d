"""MNIST in the standard 50k/10k/10k split, from ``mnist.npz`` or from the original IDX files.

Split: ``train`` = the first 50 000 images of the original 60 000 training images, ``valid`` = the
last 10 000, ``test`` = the original 10 000 test images (``t10k``). ``mnist.npz`` stores exactly
that split; when it is absent the four original gzipped IDX files are read instead (and
``download=True`` fetches them), giving byte-identical arrays.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from jaxgen.data.files import _resolve_dir, locate, missing_dataset_error, verify
from jaxgen.validation import check_choice

__all__ = ["MNIST_SPLITS", "load_mnist", "read_idx"]

MNIST_SPLITS = ("train", "valid", "test")
_N_TRAIN = 50_000  # of the 60 000 original training images; the rest is the validation split

# IDX element-type codes (third byte of the magic number) -> big-endian NumPy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path) -> np.ndarray:
    """Parse an IDX file (LeCun's format), gzipped or not.

    Layout: a 4-byte magic number ``00 00 TT NN`` (``TT`` the element type, ``NN`` the number of
    dimensions), then ``NN`` big-endian uint32 sizes, then the elements in row-major order,
    big-endian. MNIST images have magic 2051 (uint8, 3 dims), labels 2049 (uint8, 1 dim).

    Returns:
      NumPy array with the file's shape, in native byte order.

    Raises:
      ValueError: a bad magic number, an unknown element type, or a size that does not match the header.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip magic: decide by content, not by the file name
        raw = gzip.decompress(raw)
    if len(raw) < 4:
        raise ValueError(f"{path}: not an IDX file ({len(raw)} bytes, too short for a header).")
    magic = int.from_bytes(raw[:4], "big")
    type_code, ndim = raw[2], raw[3]
    if raw[0] != 0 or raw[1] != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise ValueError(
            f"{path}: not an IDX file: magic number 0x{magic:08x} ({magic}); expected 0x0000TTNN with "
            f"TT an element type in {[hex(c) for c in _IDX_DTYPES]} and NN >= 1 dimensions "
            "(MNIST: 2051 for images, 2049 for labels)."
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header}).")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: IDX header says shape {shape} of {dtype.newbyteorder('=')} ({expected} data bytes), "
            f"but the file has {len(raw) - header} data bytes."
        )
    data = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))  # a native-order, writable copy


def _check_idx(arr: np.ndarray, path: Path, shape: tuple[int, ...]) -> np.ndarray:
    if arr.dtype != np.uint8 or arr.shape != shape:
        raise ValueError(f"{path}: expected uint8 {shape}, got {arr.dtype} {arr.shape}.")
    return arr


def _load_from_idx(split: str, directory: Path, download: bool):
    prefix, n = ("t10k", 10_000) if split == "test" else ("train", 60_000)
    img_path = locate(f"{prefix}-images-idx3-ubyte.gz", data_dir=directory, download=download)
    lab_path = locate(f"{prefix}-labels-idx1-ubyte.gz", data_dir=directory, download=download)
    images = _check_idx(read_idx(img_path), img_path, (n, 28, 28))
    labels = _check_idx(read_idx(lab_path), lab_path, (n,))
    if split == "train":
        return images[:_N_TRAIN], labels[:_N_TRAIN]
    if split == "valid":
        return images[_N_TRAIN:], labels[_N_TRAIN:]
    return images, labels


def load_mnist(split: str = "train", *, data_dir=None, download: bool = False):
    """Load one MNIST split as raw bytes.

    Reads ``mnist.npz`` from ``data_dir`` if it is there (sha256-verified), else the original IDX
    files ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` (sha256-verified; fetched when
    ``download`` is True). Use :func:`jaxgen.data.to_float` / :func:`jaxgen.data.binarize` next.

    Args:
      split: ``"train"`` (50 000), ``"valid"`` (10 000) or ``"test"`` (10 000).
      data_dir: folder with the files; default :func:`jaxgen.data.data_dir`.
      download: fetch the IDX files when neither they nor ``mnist.npz`` are present.

    Returns:
      ``(images, labels)``: uint8 (N, 28, 28) with pixels 0..255 and uint8 (N,) with digits 0..9.

    Raises:
      ValueError: an unknown split.
      DataFileError: no usable file (the message names mnist.npz and the four IDX files, where it
        looked and how to get them, e.g. ``jaxgen data fetch mnist``),
        or a file fails its checksum (a corrupted ``mnist.npz`` is an error, never skipped silently).
    """
    check_choice(split, "split", MNIST_SPLITS)
    directory = _resolve_dir(data_dir)
    npz = directory / "mnist.npz"
    idx_names = [f"{p}-{k}-ubyte.gz" for p in (("t10k",) if split == "test" else ("train",))
                 for k in ("images-idx3", "labels-idx1")]
    if not npz.exists() and not download and not all((directory / n).exists() for n in idx_names):
        raise missing_dataset_error("mnist", directory)  # names mnist.npz and all four IDX files
    if npz.exists():
        verify("mnist.npz", npz)  # a corrupted archive is an error, never skipped for the IDX files
        with np.load(npz, allow_pickle=False) as z:
            return z[f"x_{split}"], z[f"y_{split}"]
    return _load_from_idx(split, directory, download)
