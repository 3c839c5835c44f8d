"""Tests for jaxgen.data's files, checksums, downloads and real-data loaders."""
import dataclasses
import gzip
import hashlib
import importlib.resources
import os
import struct
from pathlib import Path

import jax
import numpy as np
import pytest
import scipy.io

from jaxgen import data as D
from jaxgen.data import files

from conftest import shared_data_dir

FAITHFUL_SHA256 = "d40b983752ab7ec0b15b740089c3ca7b7b59d0c7433a029a1714d134de1e8d14"  # /work/shared/data/README.md


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A registered toy file: returns (name, good bytes, data folder, a file:// URL of a good copy)."""
    payload = b"jaxgen toy payload\n" * 50
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "toy.bin").write_bytes(payload)
    url = (mirror / "toy.bin").as_uri()
    entry = files.DataFile("toy.bin", _sha(payload), len(payload), (url,), manual="ask the toy maker")
    monkeypatch.setitem(files.REGISTRY, "toy.bin", entry)
    folder = tmp_path / "data"
    folder.mkdir()
    return "toy.bin", payload, folder, url


# ---------------------------------------------------------------------------------- data dir
def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXGEN_DATA_DIR", str(tmp_path / "d"))
    assert D.data_dir() == tmp_path / "d"
    monkeypatch.delenv("JAXGEN_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert D.data_dir() == tmp_path / "xdg" / "jaxgen"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert D.data_dir() == tmp_path / "home" / ".cache" / "jaxgen"


# ---------------------------------------------------------------------------------- checksums
def test_verify_good_file(toy):
    name, payload, folder, _ = toy
    (folder / name).write_bytes(payload)
    assert D.locate(name, data_dir=folder) == folder / name
    assert D.sha256_file(folder / name) == _sha(payload)


def test_corrupted_file_error_says_what_where_and_how(toy, monkeypatch):
    name, payload, folder, url = toy
    bad = payload[:-1] + b"X"
    (folder / name).write_bytes(bad)
    monkeypatch.delenv("JAXGEN_DATA_DIR", raising=False)
    with pytest.raises(D.DataFileError) as info:
        D.locate(name, data_dir=folder)
    err, msg = info.value, str(info.value)
    assert isinstance(err, OSError)
    for needle in (name, str(folder / name), _sha(payload), _sha(bad), "JAXGEN_DATA_DIR", "download=True", url):
        assert needle in msg, needle
    assert (err.name, err.path, err.expected, err.actual) == (name, folder / name, _sha(payload), _sha(bad))


def test_missing_file_error(toy):
    name, payload, folder, url = toy
    with pytest.raises(D.DataFileError) as info:
        D.locate(name, data_dir=folder)
    msg = str(info.value)
    assert "not found" in msg and str(folder / name) in msg and _sha(payload) in msg and url in msg
    assert "ask the toy maker" in msg and info.value.actual is None


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown data file"):
        D.locate("no-such-file.bin")


def test_verification_is_cached_but_sees_changes(toy, monkeypatch):
    name, payload, folder, _ = toy
    path = folder / name
    path.write_bytes(payload)
    calls = []
    real = hashlib.sha256
    monkeypatch.setattr(files.hashlib, "sha256", lambda *a: calls.append(1) or real(*a))
    D.verify(name, path)
    D.verify(name, path)
    assert len(calls) == 1  # the second load only stats the file
    path.write_bytes(payload[:-1] + b"Y")  # same size, new content and mtime
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(D.DataFileError, match="sha256 mismatch"):
        D.verify(name, path)


# ---------------------------------------------------------------------------------- downloads
def test_download_from_file_url(toy):
    name, payload, folder, _ = toy
    target = folder / "new"
    path = D.download(name, data_dir=target)
    assert path == target / name and path.read_bytes() == payload
    assert sorted(p.name for p in target.iterdir()) == [name]  # no temporary left behind


def test_corrupted_download_is_rejected_and_leaves_nothing(toy, tmp_path):
    name, payload, folder, _ = toy
    evil = tmp_path / "evil.bin"
    evil.write_bytes(payload.replace(b"toy", b"bad"))
    with pytest.raises(D.DataFileError) as info:
        D.download(name, data_dir=folder, urls=[evil.as_uri()])
    assert "could not be downloaded" in str(info.value) and evil.as_uri() in str(info.value)
    assert _sha(evil.read_bytes()) in str(info.value)
    assert list(folder.iterdir()) == []


def test_download_falls_back_to_next_url_and_replaces_a_bad_copy(toy, tmp_path):
    name, payload, folder, url = toy
    (folder / name).write_bytes(b"stale")
    path = D.download(name, data_dir=folder, urls=[(tmp_path / "absent.bin").as_uri(), url])
    assert path.read_bytes() == payload
    assert sorted(p.name for p in folder.iterdir()) == [name]


def test_locate_downloads_on_request(toy):
    name, payload, folder, _ = toy
    assert D.locate(name, data_dir=folder, download=True).read_bytes() == payload


def test_registry_entries_are_well_formed():
    for name, entry in D.REGISTRY.items():
        assert entry.filename == name
        if entry.sha256 is None:  # no digest: a structural check and a note saying so
            assert entry.check is not None and "structure" in entry.note
        else:
            assert len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0
    assert D.REGISTRY["faithful.csv"].sha256 == FAITHFUL_SHA256


# ---------------------------------------------------------------------------------- faithful, digits
def test_faithful():
    X, names = D.load_faithful(return_names=True)
    assert names == ("eruptions", "waiting")
    assert X.shape == (272, 2) and X.dtype == np.float64
    np.testing.assert_array_equal(X[0], [3.6, 79.0])
    # Means published with R's datasets::faithful.
    np.testing.assert_allclose(X.mean(axis=0), [3.487783, 70.89706], atol=1e-5)
    bundled = importlib.resources.files("jaxgen.data") / "resources" / "faithful.csv"
    assert _sha(bundled.read_bytes()) == FAITHFUL_SHA256


def test_digits():
    X, y = D.load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64 and y.shape == (1797,)
    assert X.min() == 0 and X.max() == 16 and np.all(X == np.round(X))
    assert set(np.unique(y)) == set(range(10))
    images, y2 = D.load_digits(as_images=True)
    np.testing.assert_array_equal(images.reshape(1797, 64), X)
    np.testing.assert_array_equal(y, y2)


# ---------------------------------------------------------------------------------- IDX parser
def _idx_bytes(arr: np.ndarray, type_code: int) -> bytes:
    header = struct.pack(">BBBB", 0, 0, type_code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def test_read_idx_round_trip(tmp_path):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    (tmp_path / "img.idx").write_bytes(_idx_bytes(images, 0x08))
    (tmp_path / "img.gz").write_bytes(gzip.compress(_idx_bytes(images, 0x08)))
    for name in ("img.idx", "img.gz"):
        out = D.read_idx(tmp_path / name)
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out, images)
    ints = np.array([[1, -2], [70000, -(2**31)]], dtype=np.int32)  # multi-byte: big-endian on disk
    (tmp_path / "int.idx").write_bytes(_idx_bytes(ints, 0x0C))
    out = D.read_idx(tmp_path / "int.idx")
    assert out.dtype == np.int32 and out.dtype.isnative
    np.testing.assert_array_equal(out, ints)


def test_read_idx_rejects_bad_files(tmp_path):
    good = _idx_bytes(np.zeros((2, 3), np.uint8), 0x08)
    (tmp_path / "magic.idx").write_bytes(b"\x01\x00" + good[2:])
    with pytest.raises(ValueError, match="magic number 0x01000802"):
        D.read_idx(tmp_path / "magic.idx")
    (tmp_path / "type.idx").write_bytes(good[:2] + b"\x07" + good[3:])
    with pytest.raises(ValueError, match="magic number"):
        D.read_idx(tmp_path / "type.idx")
    (tmp_path / "short.idx").write_bytes(good[:-1])
    with pytest.raises(ValueError, match="5 data bytes"):
        D.read_idx(tmp_path / "short.idx")


# ---------------------------------------------------------------------------------- MNIST
def _mnist_reference() -> dict:
    """The data folder's MNIST (mnist.npz or the IDX files): ``{"x_train": ..., "y_train": ..., ...}``."""
    return {f"{k}_{split}": a for split in D.MNIST_SPLITS for k, a in zip("xy", D.load_mnist(split))}


@pytest.mark.needs_data("mnist")
def test_mnist_splits():
    sizes = {"train": 50_000, "valid": 10_000, "test": 10_000}
    for split, n in sizes.items():
        x, y = D.load_mnist(split)
        assert x.shape == (n, 28, 28) and x.dtype == np.uint8
        assert y.shape == (n,) and y.dtype == np.uint8
        assert y.min() == 0 and y.max() == 9 and x.max() == 255
    # Published class counts of the MNIST test set.
    np.testing.assert_array_equal(np.bincount(y), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])


@pytest.mark.needs_data("mnist")
def test_mnist_from_idx_files_downloaded(tmp_path, monkeypatch):
    """The IDX route (download + parse + 50k/10k split) reproduces the data folder's MNIST exactly."""
    ref = _mnist_reference()
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    originals = {
        "train-images-idx3-ubyte.gz": (np.concatenate([ref["x_train"], ref["x_valid"]]), 0x08),
        "train-labels-idx1-ubyte.gz": (np.concatenate([ref["y_train"], ref["y_valid"]]), 0x08),
        "t10k-images-idx3-ubyte.gz": (ref["x_test"], 0x08),
        "t10k-labels-idx1-ubyte.gz": (ref["y_test"], 0x08),
    }
    for name, (arr, code) in originals.items():
        blob = gzip.compress(_idx_bytes(arr, code), compresslevel=0)  # stored blocks: fast
        (mirror / name).write_bytes(blob)
        entry = dataclasses.replace(D.REGISTRY[name], sha256=_sha(blob), size=len(blob),
                                    urls=((mirror / name).as_uri(),))
        monkeypatch.setitem(files.REGISTRY, name, entry)
    target = tmp_path / "data"
    with pytest.raises(D.DataFileError, match="mnist.npz"):  # nothing there and no download
        D.load_mnist("test", data_dir=target)
    for split in ("train", "valid", "test"):
        x, y = D.load_mnist(split, data_dir=target, download=True)
        np.testing.assert_array_equal(x, ref[f"x_{split}"])
        np.testing.assert_array_equal(y, ref[f"y_{split}"])
    assert sorted(p.name for p in target.iterdir()) == sorted(originals)


def test_mnist_missing_and_corrupted(tmp_path):
    with pytest.raises(D.DataFileError) as info:
        D.load_mnist("train", data_dir=tmp_path)
    msg = str(info.value)
    assert str(tmp_path / "mnist.npz") in msg and "train-images-idx3-ubyte.gz" in msg and "download=True" in msg
    (tmp_path / "mnist.npz").write_bytes(b"not an archive")
    with pytest.raises(D.DataFileError, match="sha256 mismatch"):
        D.load_mnist("train", data_dir=tmp_path, download=True)  # never falls back silently
    with pytest.raises(ValueError, match="split must be one of"):
        D.load_mnist("validation", data_dir=tmp_path)


# ---------------------------------------------------------------------------------- Frey
def test_frey_layout(tmp_path):
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, size=(1965, 28, 20), dtype=np.uint8)
    faces[0, :14] = 255  # an upright test pattern: bright top half
    faces[0, 14:] = 0
    # Roweis' layout: one face per column, the column being the row-major 28 x 20 image.
    scipy.io.savemat(tmp_path / "frey_rawface.mat", {"ff": faces.reshape(1965, 560).T})
    out = D.load_frey(data_dir=tmp_path)
    assert out.shape == (1965, 28, 20) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, faces)
    assert out[0, :14].min() == 255 and out[0, 14:].max() == 0


@pytest.mark.parametrize(
    "content, why",
    [({"ff": np.zeros((560, 10), np.uint8)}, r"\(560, 10\)"), ({"faces": np.zeros((560, 1965), np.uint8)}, "'ff'"),
     ({"ff": np.zeros((560, 1965), np.float64)}, "float64")],
)
def test_frey_structural_check(tmp_path, content, why):
    scipy.io.savemat(tmp_path / "frey_rawface.mat", content)
    with pytest.raises(D.DataFileError, match=why) as info:
        D.load_frey(data_dir=tmp_path)
    assert "structural check" in str(info.value) and str(tmp_path / "frey_rawface.mat") in str(info.value)


def test_frey_missing(tmp_path):
    with pytest.raises(D.DataFileError) as info:
        D.load_frey(data_dir=tmp_path)
    assert "https://cs.nyu.edu/~roweis/data/frey_rawface.mat" in str(info.value)
    assert "none pinned" in str(info.value)


# ---------------------------------------------------------------------------------- image helpers
def test_to_float():
    images = np.arange(2 * 28 * 28, dtype=np.int64).reshape(2, 28, 28) % 256
    out = D.to_float(images.astype(np.uint8))
    assert out.shape == (2, 784) and out.dtype == np.float32
    np.testing.assert_allclose(out, images.reshape(2, -1) / 255.0, rtol=1e-6)
    with pytest.raises(ValueError, match="uint8"):
        D.to_float(images)


def test_binarize():
    images = np.full((100, 28, 28), 64, np.uint8)
    images[:, 0, 0] = 0
    images[:, 0, 1] = 255
    key = jax.random.key(0)
    b = D.binarize(images, key)
    assert b.shape == images.shape and b.dtype == np.float32
    assert set(np.unique(np.asarray(b))) == {0.0, 1.0}
    assert np.all(np.asarray(b)[:, 0, 0] == 0) and np.all(np.asarray(b)[:, 0, 1] == 1)
    p = 64 / 255
    assert abs(float(b[:, 1:].mean()) - p) < 4 * np.sqrt(p * (1 - p) / b[:, 1:].size)
    np.testing.assert_array_equal(b, D.binarize(images, key))  # same key, same draw
    assert not np.array_equal(b, D.binarize(images, jax.random.key(1)))
    # Float probabilities from to_float give the same draw as the uint8 pixels they came from.
    np.testing.assert_array_equal(D.binarize(D.to_float(images).reshape(images.shape), key), b)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        D.binarize(np.full((2, 3), 1.5), key)


def test_binarize_x64(x64):
    b = D.binarize(np.full((4, 5), 0.5), jax.random.key(0))
    assert b.dtype == np.float64


# ---------------------------------------------------------------------------------- data sets, `jaxgen data`
@pytest.fixture
def mnist_server(tmp_path, monkeypatch):
    """A local HTTP server holding the four MNIST IDX files, made from the data folder's MNIST.

    The registry's URLs point at the server and its sha256 at these files' digests (gzip output
    differs from the published files' bytes, so the published digests cannot be reproduced here);
    everything else (urllib streaming, hashing, atomic rename) is the real download code.
    Returns ``(mirror folder, reference arrays)``.
    """
    import functools
    import http.server
    import threading

    ref = _mnist_reference()
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    arrays = {
        "train-images-idx3-ubyte.gz": np.concatenate([ref["x_train"], ref["x_valid"]]),
        "train-labels-idx1-ubyte.gz": np.concatenate([ref["y_train"], ref["y_valid"]]),
        "t10k-images-idx3-ubyte.gz": ref["x_test"],
        "t10k-labels-idx1-ubyte.gz": ref["y_test"],
    }
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mirror))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    for name, arr in arrays.items():
        blob = gzip.compress(_idx_bytes(arr, 0x08), compresslevel=0)
        (mirror / name).write_bytes(blob)
        monkeypatch.setitem(files.REGISTRY, name, dataclasses.replace(
            D.REGISTRY[name], sha256=_sha(blob), size=len(blob), urls=(base + name,)))
    yield mirror, ref
    server.shutdown()
    server.server_close()


@pytest.mark.needs_data("mnist")
def test_cli_data_fetch_mnist_over_http(mnist_server, tmp_path, capsys):
    from jaxgen import cli

    mirror, ref = mnist_server
    target = tmp_path / "data"
    assert cli.main(["data", "list", "--data-dir", str(target)]) == 0
    out = capsys.readouterr().out
    assert "mnist: NOT READY" in out and "get it with: jaxgen data fetch mnist" in out
    assert f"missing    mnist.npz                     {target / 'mnist.npz'}" in out
    assert cli.main(["data", "fetch", "mnist", "--data-dir", str(target)]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in target.iterdir()) == sorted(files.MNIST_IDX_FILES)  # no temporaries left
    for name in files.MNIST_IDX_FILES:
        assert f"verified  {target / name}" in out
        assert _sha((target / name).read_bytes()) == files.REGISTRY[name].sha256
    for split in ("train", "valid", "test"):  # the fetched files give exactly the shared arrays
        x, y = D.load_mnist(split, data_dir=target)
        np.testing.assert_array_equal(x, ref[f"x_{split}"])
        np.testing.assert_array_equal(y, ref[f"y_{split}"])
    assert cli.main(["data", "list", "--data-dir", str(target)]) == 0
    out = capsys.readouterr().out
    assert "mnist: ready" in out and "missing    mnist.npz                     " in out and "(not needed)" in out
    assert all(f"verified   {name}" in out for name in files.MNIST_IDX_FILES)
    # A second fetch downloads nothing: the data set is already usable.
    (mirror / "t10k-labels-idx1-ubyte.gz").unlink()
    assert cli.main(["data", "fetch", "mnist", "--data-dir", str(target)]) == 0
    assert "already present and verified" in capsys.readouterr().out


@pytest.mark.needs_data("mnist")
def test_cli_data_fetch_rejects_a_corrupted_download(mnist_server, tmp_path, capsys):
    from jaxgen import cli

    mirror, _ = mnist_server
    bad = mirror / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-10] + b"0123456789")  # same size, other bytes
    target = tmp_path / "data"
    assert cli.main(["data", "fetch", "mnist", "--data-dir", str(target)]) == 2
    err = capsys.readouterr().err
    assert "jaxgen: error: Data file 't10k-images-idx3-ubyte.gz' could not be downloaded" in err
    assert "differs from the expected" in err and "Traceback" not in err
    assert sorted(p.name for p in target.iterdir()) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    assert cli.main(["data", "list", "--data-dir", str(target)]) == 0
    out = capsys.readouterr().out
    assert "verified   train-images-idx3-ubyte.gz" in out and "missing    t10k-images-idx3-ubyte.gz" in out


def test_cli_data_list_reports_corrupted_and_verified(tmp_path, capsys):
    from jaxgen import cli

    (tmp_path / "mnist.npz").write_bytes(b"not the archive")
    assert cli.main(["data", "list", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"data folder: {tmp_path}" in out
    assert "corrupted  mnist.npz" in out and "sha256 mismatch" in out and "mnist: NOT READY" in out
    assert "frey: NOT READY" in out and "missing    frey_rawface.mat" in out
    bundled = Path(files.__file__).parent / "resources" / "faithful.csv"
    assert f"verified   faithful.csv                  {bundled}" in out and "faithful: ready" in out
    shared = shared_data_dir()
    if shared is not None and (shared / "mnist.npz").is_file():
        assert cli.main(["data", "list", "--data-dir", str(shared)]) == 0
        assert "verified   mnist.npz" in capsys.readouterr().out


def test_cli_data_errors(tmp_path, capsys):
    from jaxgen import cli

    assert cli.main(["data", "fetch", "mnits"]) == 2
    err = capsys.readouterr().err
    assert "Unknown data set 'mnits' (did you mean 'mnist'?). Known data sets: mnist, frey, faithful." in err
    assert cli.main(["data", "fetch", "faithful"]) == 0
    assert "bundled" in capsys.readouterr().out
    assert cli.main(["data"]) == 2  # an action is required


def test_dataset_status_and_fetch_api(toy, tmp_path, monkeypatch):
    name, payload, folder, url = toy
    monkeypatch.setitem(files.DATASETS, "toys", files.DataSet("toys", "Toys.", (name,)))
    st = files.dataset_status("toys", folder)
    assert not st["ready"] and st["files"] == [(name, "missing", folder / name, "")]
    assert files.fetch("toys", folder) == [folder / name]
    assert files.dataset_status("toys", folder)["ready"]
    assert files.fetch("toys", folder) == []  # already usable
    assert files.fetch("toys", folder, force=True) == [folder / name]  # a good copy is kept, not re-fetched
    with pytest.raises(ValueError, match="Unknown data set 'toy' \\(did you mean 'toys'\\?\\)"):
        files.fetch("toy", folder)
    # Each data set names registered files, and the missing-set message names every one of them.
    for ds in files.DATASETS.values():
        assert set(ds.all_files()) <= set(files.REGISTRY)
    msg = str(files.missing_dataset_error("mnist", tmp_path))
    for f in ("mnist.npz", *files.MNIST_IDX_FILES):
        assert str(tmp_path / f) in msg
    assert "jaxgen data fetch mnist" in msg


# ---------------------------------------------------------------------------------- tests that need a data set
NEEDS_MNIST = '''
import pytest
from jaxgen.data import load_mnist


@pytest.fixture(scope="module")
def mnist_test():
    return load_mnist("test")


@pytest.mark.needs_data("mnist")
def test_marked():
    raise AssertionError("ran")


def test_loads_in_its_body():
    load_mnist("train")


def test_loads_in_a_fixture(mnist_test):
    pass


def test_loads_from_another_folder(tmp_path):
    load_mnist("train", data_dir=tmp_path)  # not the data folder: a real error, not a skip
'''


def test_a_test_that_needs_a_missing_data_set_skips_with_one_reason(pytester, tmp_path, monkeypatch):
    """With MNIST absent from the data folder (a fresh clone without network), a test that needs it,
    marked or not, in its body or through a fixture, is skipped (not an error) with one reason that
    names `make data`; a missing file elsewhere, or a corrupted one, stays an error; with MNIST
    present the test runs."""
    shared = shared_data_dir()
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makeini("[pytest]\nmarkers =\n    needs_data: needs these data sets\n")
    pytester.makepyfile(test_inner=NEEDS_MNIST)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("JAXGEN_DATA_DIR", str(empty))
    result = pytester.runpytest("-ra", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=3, failed=1)
    # one summary line for the three: the same reason, raised from one place
    result.stdout.re_match_lines([
        rf"SKIPPED \[3\] conftest.py:\d+: data set 'mnist' is not in the data folder {empty}: run `make data` "
        r"to download it \(sha256-verified; or `jaxgen data fetch mnist`\), or point JAXGEN_DATA_DIR at a folder "
        r"that has it",
        r"FAILED test_inner.py::test_loads_from_another_folder - jaxgen.data.files.Data.*",
    ])
    (empty / "mnist.npz").write_bytes(b"not the archive")  # a corrupted file is an error to see, never a skip
    pytester.runpytest("-p", "no:cacheprovider", "-k", "marked or body").assert_outcomes(failed=2)
    if shared is not None and files.dataset_status("mnist", shared)["ready"]:
        monkeypatch.setenv("JAXGEN_DATA_DIR", str(shared))
        pytester.runpytest("-p", "no:cacheprovider", "-k", "marked").assert_outcomes(failed=1)  # it ran


def test_a_failed_download_suggests_what_helps_not_the_same_download(tmp_path, monkeypatch, capsys):
    """No network (here: URLs that do not exist): the message names the file's URL, where to save it,
    the other files of the data set and JAXGEN_DATA_DIR; never the command or call that just failed."""
    from jaxgen import cli

    for name in files.MNIST_IDX_FILES:
        monkeypatch.setitem(files.REGISTRY, name, dataclasses.replace(
            D.REGISTRY[name], urls=((tmp_path / "offline" / name).as_uri(),)))
    monkeypatch.setenv("JAXGEN_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["data", "fetch", "mnist"]) == 2
    err = capsys.readouterr().err
    first, rest = files.MNIST_IDX_FILES[0], files.MNIST_IDX_FILES[1:]
    assert f"Data file '{first}' could not be downloaded" in err and "Traceback" not in err
    assert "jaxgen data fetch" not in err and "download=True" not in err and "jaxgen.data.download" not in err
    for needle in (f"https://ossci-datasets.s3.amazonaws.com/mnist/{first}", f"save it as {tmp_path / 'data' / first}",
                   ", ".join(rest), f"copy mnist.npz (which replaces them) into {tmp_path / 'data'}", "JAXGEN_DATA_DIR"):
        assert needle in err, needle
    with pytest.raises(D.DataFileError) as info:  # the same from the loader
        D.load_mnist("test", download=True)
    assert "download=True" not in str(info.value) and "save it as" in str(info.value)
