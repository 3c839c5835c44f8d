"""Data files on disk: where they live, the one registry of known files, checksums and downloads.

Every loader goes through :func:`locate`, which finds a file in the data directory, verifies it
(sha256, or a structural check where no trustworthy digest exists) and, on request, downloads it.
Anything wrong with a file raises :class:`DataFileError`, whose message names the file, the full
path looked at, the expected and actual sha256 and the ways to obtain a good copy.

Files are grouped into data sets (:data:`DATASETS`: ``mnist``, ``frey``, ``faithful``), which is
what ``jaxgen data list`` reports on and ``jaxgen data fetch NAME`` (:func:`fetch`) downloads.

Verification is cached per process by ``(path, mtime, size)``: the 11 MB MNIST archive is hashed
once, then repeated loads cost a ``stat``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = [
    "DATA_DIR_ENV",
    "DATASETS",
    "REGISTRY",
    "DataFile",
    "DataFileError",
    "DataSet",
    "data_dir",
    "dataset_status",
    "download",
    "fetch",
    "file_status",
    "locate",
    "missing_dataset_error",
    "sha256_file",
    "verify",
]

DATA_DIR_ENV = "JAXGEN_DATA_DIR"


def data_dir() -> Path:
    """The data directory: ``$JAXGEN_DATA_DIR`` if set, else ``$XDG_CACHE_HOME/jaxgen`` or ``~/.cache/jaxgen``.

    The directory is not created here (only :func:`download` creates it).
    """
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "jaxgen"


def _resolve_dir(directory) -> Path:
    return data_dir() if directory is None else Path(directory).expanduser()


class DataFileError(OSError):
    """A data file is missing, fails its checksum or structural check, or could not be downloaded.

    A subclass of ``OSError`` (it is a problem with a file on disk, not with an argument), so
    ``except OSError`` catches it. Attributes: ``name`` (registry name), ``path`` (full path looked
    at), ``expected`` and ``actual`` (sha256 hex digests; ``actual`` is None when the file is missing).
    """

    def __init__(self, message: str, *, name: str, path: Path, expected: str | None, actual: str | None):
        super().__init__(message)
        self.name = name
        self.path = Path(path)
        self.expected = expected
        self.actual = actual

    def __str__(self) -> str:  # OSError's default would prepend errno fields
        return self.args[0]


@dataclasses.dataclass(frozen=True)
class DataFile:
    """One known data file.

    Attributes:
      filename: file name inside the data directory (also the registry key).
      sha256: hex digest of the exact bytes, or None where no trustworthy published digest exists
        (then ``check`` must verify the structure and ``note`` says so).
      size: size in bytes, or None if unknown.
      urls: download URLs, tried in order.
      manual: how to obtain the file by hand (shown in error messages).
      note: provenance of the digest, licence, layout.
      check: optional structural check ``check(path)`` raising ``ValueError`` on a malformed file.
    """

    filename: str
    sha256: str | None
    size: int | None
    urls: tuple[str, ...]
    manual: str
    note: str = ""
    check: Callable[[Path], None] | None = dataclasses.field(default=None, compare=False, repr=False)


def _check_frey(path: Path) -> None:
    from jaxgen.data.frey import check_frey_file  # lazy: scipy.io is only needed for Frey

    check_frey_file(path)


_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",  # the mirror torchvision uses
    "https://storage.googleapis.com/cvdf-datasets/mnist/",  # the mirror TensorFlow Datasets uses
    "http://yann.lecun.com/exdb/mnist/",  # the original site
)
_IDX_NOTE = (
    "sha256 of the original gzip file as published by several independent projects "
    "(TensorFlow Datasets' checksum file, Bazel http_file rules, torchvision-compatible loaders); "
    "torchvision's md5 for the same bytes: {md5}."
)


def _idx(filename: str, sha256: str, size: int, md5: str) -> DataFile:
    return DataFile(
        filename=filename,
        sha256=sha256,
        size=size,
        urls=tuple(m + filename for m in _MNIST_MIRRORS),
        manual=f"download {_MNIST_MIRRORS[0]}{filename} (or the same name from another mirror); keep it gzipped",
        note=_IDX_NOTE.format(md5=md5),
    )


REGISTRY: dict[str, DataFile] = {
    entry.filename: entry
    for entry in (
        DataFile(
            filename="mnist.npz",
            sha256="202d621f0b456b3e2f9ed2b63eaeca5f036a7507d61c1f11684d63b53012d070",
            size=11_491_277,
            urls=(),
            manual=(
                "this exact archive (the 50k/10k/10k split as uint8) has no public URL; copy it from a "
                "machine that has it, or do without it: load_mnist reads the four original IDX files "
                "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
                "t10k-labels-idx1-ubyte.gz) from the same folder when mnist.npz is absent, and "
                "`jaxgen data fetch mnist` or load_mnist(download=True) fetches those"
            ),
            note="keys x_train/y_train (50000), x_valid/y_valid (10000), x_test/y_test (10000); uint8.",
        ),
        _idx("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
             9_912_422, "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        _idx("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
             28_881, "d53e105ee54ea40749a09fcbcd1e9432"),
        _idx("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
             1_648_877, "9fb629c4189551a2d022fa330f9573f3"),
        _idx("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
             4_542, "ec29112dd5afa0611ce80d1b7f02629c"),
        DataFile(
            filename="frey_rawface.mat",
            sha256=None,
            size=None,
            urls=("https://cs.nyu.edu/~roweis/data/frey_rawface.mat",),
            manual="download https://cs.nyu.edu/~roweis/data/frey_rawface.mat (Sam Roweis' data page)",
            note=(
                "no published sha256 could be found in two independent sources, so none is pinned; the "
                "file is verified by structure instead: MATLAB variable 'ff', uint8, shape (560, 1965)."
            ),
            check=_check_frey,
        ),
        DataFile(
            filename="faithful.csv",
            sha256="d40b983752ab7ec0b15b740089c3ca7b7b59d0c7433a029a1714d134de1e8d14",
            size=2_271,
            urls=(),
            manual="bundled with jaxgen (jaxgen/data/resources/faithful.csv); reinstall jaxgen if it is missing",
            note="Azzalini & Bowman (1990) as in R's datasets::faithful; 272 rows, header eruptions,waiting.",
        ),
    )
}


def _entry(name: str) -> DataFile:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown data file {name!r}; known files: {sorted(REGISTRY)}") from None


# (resolved path, mtime_ns, size) -> sha256 hex; a changed file gets a new key and is hashed again.
_DIGESTS: dict[tuple[str, int, int], str] = {}
# Same key for files that passed a structural check (no digest pinned).
_CHECKED: set[tuple[str, int, int]] = set()


def _stat_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_mtime_ns, st.st_size)


def sha256_file(path) -> str:
    """sha256 hex digest of a file, cached per process by (path, mtime, size)."""
    path = Path(path)
    key = _stat_key(path)
    digest = _DIGESTS.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        digest = _DIGESTS[key] = h.hexdigest()
    return digest


def _how_to_fix(entry: DataFile, path: Path, *, download_failed: bool = False) -> str:
    """The ways to get a good copy of ``entry`` at ``path``. After a failed download, never the
    download that just failed: the file by hand (its URL and where to save it) or another folder."""
    env = os.environ.get(DATA_DIR_ENV)
    folder = (f"  - or point {DATA_DIR_ENV} at a folder that already holds a good copy (it is "
              + (f"set to {env!r}" if env else "not set") + "), or pass data_dir=...;")
    by_hand = f"  - by hand: {entry.manual}; save it as {path}"
    if download_failed:
        lines = [by_hand + " (jaxgen checks the sha256 above when it loads it);"]
        dataset = _dataset_of(entry.filename)
        others = [f for f in dataset.files if f != entry.filename] if dataset is not None else []
        if others:
            lines.append(f"    data set {dataset.name!r} needs {', '.join(others)} from the same place too, saved "
                         "beside it;")
        if dataset is not None and dataset.alternative and not _entry(dataset.alternative).urls:
            lines.append(f"  - or copy {dataset.alternative} (which replaces them) into {path.parent} from a machine "
                         "that has it;")
        lines.append(folder)
        return "How to get it (the download above failed: no network, or every mirror refused):\n" + "\n".join(lines)
    lines = [folder.replace("  - or point", "  - point", 1)]
    if entry.urls:
        dataset = _dataset_of(entry.filename)
        cli = f"run `jaxgen data fetch {dataset.name}`, " if dataset is not None else ""
        lines.append(
            f"  - or let jaxgen fetch it: {cli}pass download=True to the loader, or call "
            f"jaxgen.data.download({entry.filename!r}) (tries {', '.join(entry.urls)});"
        )
    lines.append(by_hand.replace("  - by hand", "  - or by hand", 1) + ".")
    return "How to get it:\n" + "\n".join(lines)


def _error(entry: DataFile, path: Path, problem: str, actual: str | None, details: str = "",
           download_failed: bool = False) -> DataFileError:
    expected = entry.sha256 or f"none pinned ({entry.note})"
    msg = (
        f"Data file {entry.filename!r} {problem}.\n{details}"
        f"  looked for: {path}\n"
        f"  expected sha256: {expected}" + (f" ({entry.size} bytes)" if entry.size else "") + "\n"
        f"  actual sha256:   {actual if actual is not None else '(no file)'}\n"
        + _how_to_fix(entry, path, download_failed=download_failed)
    )
    return DataFileError(msg, name=entry.filename, path=path, expected=entry.sha256, actual=actual)


def verify(name: str, path) -> Path:
    """Check the file at ``path`` against the registry entry ``name``; return the path.

    Raises:
      DataFileError: the file is missing, its sha256 differs, or (no digest pinned) its structure is wrong.
    """
    entry = _entry(name)
    path = Path(path)
    if not path.is_file():
        raise _error(entry, path, "was not found", None)
    actual = sha256_file(path)
    if entry.sha256 is not None:
        if actual != entry.sha256:
            problem = "is corrupted or a different version (sha256 mismatch); delete or replace it"
            raise _error(entry, path, problem, actual)
        return path
    key = _stat_key(path)
    if key not in _CHECKED:
        try:
            entry.check(path)
        except Exception as e:  # any parse failure of a malformed file lands here
            raise _error(entry, path, f"failed its structural check ({e}); delete or replace it", actual) from e
        _CHECKED.add(key)
    return path


def locate(name: str, *, data_dir=None, download: bool = False) -> Path:
    """Path of the verified file ``name`` in ``data_dir`` (default :func:`data_dir`), downloading it if asked.

    Raises:
      DataFileError: missing (and ``download`` is False), corrupted, or the download failed.
    """
    entry = _entry(name)
    path = _resolve_dir(data_dir) / entry.filename
    if not path.exists() and download:
        return _download(name, data_dir)
    return verify(name, path)


def download(name: str, data_dir=None, *, urls: Sequence[str] | None = None, timeout: float = 60.0) -> Path:
    """Download the registry file ``name`` into ``data_dir``, verify it, and return its path.

    Each URL is streamed to a temporary file in the target folder; only a file whose sha256 (or
    structure, where no digest is pinned) checks out is renamed into place (atomic ``os.replace``),
    so a failed or corrupted download leaves nothing behind. A good copy already in place is kept.

    Args:
      name: registry name, e.g. ``"train-images-idx3-ubyte.gz"``.
      data_dir: target folder (created if needed); default :func:`data_dir`.
      urls: override the registry's URLs (a private mirror, or ``file://`` URLs).
      timeout: seconds per connection attempt.

    Raises:
      DataFileError: every URL failed; the message lists each URL's error.
    """
    entry = _entry(name)
    directory = _resolve_dir(data_dir)
    dest = directory / entry.filename
    if dest.is_file():
        try:
            return verify(name, dest)
        except DataFileError:
            pass  # a bad copy: replace it below
    sources = tuple(urls) if urls is not None else entry.urls
    if not sources:
        raise _error(entry, dest, "cannot be downloaded (no URL is known)", None)
    directory.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in sources:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.filename}.", suffix=".part", dir=directory)
        tmp = Path(tmp_name)
        try:
            h, n = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    h.update(chunk)
                    n += len(chunk)
            digest = h.hexdigest()
            if entry.sha256 is not None and digest != entry.sha256:
                raise ValueError(f"sha256 {digest} ({n} bytes) differs from the expected {entry.sha256}")
            if entry.check is not None and entry.sha256 is None:
                entry.check(tmp)
            os.replace(tmp, dest)
            _DIGESTS[_stat_key(dest)] = digest
            if entry.sha256 is None:
                _CHECKED.add(_stat_key(dest))
            return dest
        except Exception as e:  # network errors, bad bytes, malformed structure: try the next URL
            failures.append(f"    {url}: {type(e).__name__}: {e}")
        finally:
            tmp.unlink(missing_ok=True)
    raise _error(entry, dest, "could not be downloaded", None, details="".join(f + "\n" for f in failures),
                 download_failed=True)


_download = download  # locate()'s `download` flag shadows the function's name


# --------------------------------------------------------------------------- data sets


@dataclasses.dataclass(frozen=True)
class DataSet:
    """A data set as a user names it (``jaxgen data fetch mnist``): the registry files behind one loader.

    Attributes:
      name: short name (the key of :data:`DATASETS`).
      description: one line, with the loader that reads it.
      files: registry names of the files the loader needs (all of them), fetched by :func:`fetch`.
      alternative: a single registry file that can stand in for all of ``files`` (``mnist.npz``), or None.
      bundled: the files ship inside the package (nothing to fetch; :func:`dataset_status` checks the
        package's copy).
    """

    name: str
    description: str
    files: tuple[str, ...]
    alternative: str | None = None
    bundled: bool = False

    def all_files(self) -> tuple[str, ...]:
        return ((self.alternative,) if self.alternative else ()) + self.files


MNIST_IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                   "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

DATASETS: dict[str, DataSet] = {
    ds.name: ds
    for ds in (
        DataSet("mnist", "MNIST digits, 50k/10k/10k uint8 (load_mnist): mnist.npz, or the four original IDX files",
                MNIST_IDX_FILES, alternative="mnist.npz"),
        DataSet("frey", "Frey Face, 1965 x 28 x 20 uint8 (load_frey)", ("frey_rawface.mat",)),
        DataSet("faithful", "Old Faithful, 272 x 2 (load_faithful), bundled in the package", ("faithful.csv",),
                bundled=True),
    )
}


def _dataset_of(filename: str) -> DataSet | None:
    return next((ds for ds in DATASETS.values() if filename in ds.all_files()), None)


def _dataset(name: str) -> DataSet:
    try:
        return DATASETS[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(DATASETS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"Unknown data set {name!r}{hint}. Known data sets: {', '.join(DATASETS)}.") from None


def _bundled_dir() -> Path:
    return Path(__file__).resolve().parent / "resources"


def file_status(name: str, directory=None) -> tuple[str, Path, str]:
    """``(status, path, detail)`` of registry file ``name`` in ``directory`` (default :func:`data_dir`).

    ``status`` is ``"verified"`` (present, sha256 or structure checked), ``"missing"`` or
    ``"corrupted"`` (present but fails its check; ``detail`` says how).
    """
    entry = _entry(name)
    path = _resolve_dir(directory) / entry.filename
    try:
        verify(name, path)
    except DataFileError as e:
        if e.actual is None and not path.exists():
            return "missing", path, ""
        return "corrupted", path, str(e).splitlines()[0]
    return "verified", path, ""


def dataset_status(name: str, directory=None) -> dict:
    """Where data set ``name`` stands in ``directory`` (default :func:`data_dir`; the package for bundled sets).

    Returns:
      ``{"name", "description", "ready": bool, "files": [(filename, status, path, detail), ...]}``;
      ``ready`` when its loader can run: every file of ``files`` verified, or the ``alternative`` verified.
    """
    ds = _dataset(name)
    folder = _bundled_dir() if ds.bundled else _resolve_dir(directory)
    rows = [(f, *file_status(f, folder)) for f in ds.all_files()]
    status = {f: st for f, st, _, _ in rows}
    ready = all(status[f] == "verified" for f in ds.files) or (
        ds.alternative is not None and status[ds.alternative] == "verified")
    return {"name": ds.name, "description": ds.description, "ready": ready, "files": rows}


def missing_dataset_error(name: str, directory=None) -> DataFileError:
    """The error for a data set none of whose usable files is present: it names every file and how to get them."""
    ds = _dataset(name)
    folder = _resolve_dir(directory)
    first = ds.alternative or ds.files[0]
    entry = _entry(first)
    needs = (f"either {ds.alternative} or all of {', '.join(ds.files)}" if ds.alternative
             else f"all of {', '.join(ds.files)}")
    state = "\n".join(f"    {path}: {st}{' (' + detail + ')' if detail else ''}"
                       for _, st, path, detail in dataset_status(name, folder)["files"])
    env = os.environ.get(DATA_DIR_ENV)
    downloadable = [f for f in ds.files if _entry(f).urls]
    how = [f"  - point {DATA_DIR_ENV} at a folder that holds them (it is "
           + (f"set to {env!r}" if env else "not set") + "), or pass data_dir=...;"]
    if downloadable:
        how.append(f"  - or run `jaxgen data fetch {ds.name}` (downloads {', '.join(downloadable)} into {folder} and "
                   "verifies each sha256), or pass download=True to the loader;")
    if downloadable:
        how.append(f"  - or by hand: download {', '.join(downloadable)} from "
                   f"{_entry(downloadable[0]).urls[0].rsplit('/', 1)[0]}/ into {folder};")
    if ds.alternative and not _entry(ds.alternative).urls:
        how.append(f"  - or copy {ds.alternative} into {folder} from a machine that has it (it has no public URL).")
    msg = (f"Data set {ds.name!r} was not found in {folder}: it needs {needs}.\n"
           f"  looked for:\n{state}\nHow to get it:\n" + "\n".join(how))
    return DataFileError(msg, name=first, path=folder / entry.filename, expected=entry.sha256, actual=None)


def fetch(name: str, data_dir=None, *, force: bool = False, timeout: float = 60.0) -> list[Path]:
    """Download the files of data set ``name`` into ``data_dir`` (default :func:`data_dir`) and verify them.

    Files already present and verified are kept; a corrupted copy is replaced (see :func:`download`).
    When the data set is already usable (e.g. ``mnist.npz`` verified) nothing is downloaded unless
    ``force`` is True.

    Returns:
      the paths of the data set's files (verified), in :attr:`DataSet.files` order; empty for a
      bundled set or when nothing had to be fetched.

    Raises:
      ValueError: an unknown data set name.
      DataFileError: a download failed or a downloaded file did not verify (nothing bad is kept).
    """
    ds = _dataset(name)
    if ds.bundled or (not force and dataset_status(name, data_dir)["ready"]):
        return []
    return [download(f, data_dir, timeout=timeout) for f in ds.files]
