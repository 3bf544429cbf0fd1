"""initlab.fetch against a mirror served here, on loopback: never the internet.

The mirror serves the real MNIST files from ../shared/data (checked against the
publishers' MD5s and the SHA-256s beside them), or, on a machine without them, small
stand-in IDX files whose checksums are computed here and put in the table. Its handler
honours Range requests and can be told to cut a body short, to answer 404, to serve wrong
bytes, or to ignore Range; it records every request, so the tests see what was sent.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import socket
import struct
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Final

import numpy as np
import pytest

from initlab import data, fetch

NAME: Final = "mnist"
KNOWN = fetch.SOURCES  # the real table, before the autouse fixture replaces the mirrors


def _shared(name: str) -> Path | None:
    """../shared/data/<name> seen from this checkout, if it is there."""
    for ancestor in Path(__file__).resolve().parents:
        folder = ancestor / "shared" / "data" / name
        if (folder / "SHA256SUMS").is_file():
            return folder
    return None


def _dead_url() -> str:
    """A loopback URL nobody listens on: the port was free a moment ago and is closed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# ----------------------------------------------------------------------------- the mirror


@dataclass
class Request:
    path: str
    range: str | None  # the Range header, as sent
    status: int
    sent: int  # body bytes written


@dataclass
class Mirror:
    """What the loopback server serves, how it misbehaves, and what it was asked."""

    files: dict[str, bytes]
    truncate: dict[str, int] = field(default_factory=dict)  # name → bytes sent, then close
    wrong: set[str] = field(default_factory=set)  # names served with one byte flipped
    ignore_range: bool = False  # answer 200 with the whole file even to a Range request
    log: list[Request] = field(default_factory=list)
    url: str = ""

    def downloads(self) -> list[Request]:
        return [r for r in self.log if r.status in (200, 206)]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        mirror = self.server.mirror
        name = self.path.lstrip("/")
        wanted = self.headers.get("Range")
        content = mirror.files.get(name)
        if content is None:
            self.send_error(404)
            mirror.log.append(Request(name, wanted, 404, 0))
            return
        if name in mirror.wrong:
            middle = len(content) // 2
            content = content[:middle] + bytes([content[middle] ^ 0xFF]) + content[middle + 1 :]
        start = 0
        if wanted and not mirror.ignore_range:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
        body = content[start:]
        status = 206 if start else 200
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
        self.end_headers()
        if name in mirror.truncate:
            body = body[: mirror.truncate[name]]  # the header promised more: a dropped line
        self.wfile.write(body)
        self.wfile.flush()
        mirror.log.append(Request(name, wanted, status, len(body)))
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet


class _Server(http.server.ThreadingHTTPServer):
    mirror: Mirror


def _idx_gz(array: np.ndarray, code: int) -> bytes:
    """IDX bytes written from the format's definition, gzipped."""
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(">u1").tobytes(), mtime=0)


def _standin() -> dict[str, bytes]:
    """Four small, valid IDX files under the published names (no ../shared/data here)."""
    images = np.arange(5 * 28 * 28).reshape(5, 28, 28) % 256
    labels = np.array([3, 1, 4, 1, 5])
    return {
        "train-images-idx3-ubyte.gz": _idx_gz(images, 0x08),
        "train-labels-idx1-ubyte.gz": _idx_gz(labels, 0x08),
        "t10k-images-idx3-ubyte.gz": _idx_gz(images[:2], 0x08),
        "t10k-labels-idx1-ubyte.gz": _idx_gz(labels[:2], 0x08),
    }


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every known mirror replaced by a dead loopback one: no test can reach the internet."""
    dead = (_dead_url(),)
    monkeypatch.setattr(
        fetch,
        "SOURCES",
        MappingProxyType({k: replace(s, mirrors=dead) for k, s in fetch.SOURCES.items()}),
    )


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """The published files by name: the real ones, or stand-ins put in the table."""
    folder = _shared(NAME)
    if folder is not None:
        return {f.name: (folder / f.name).read_bytes() for f in fetch.SOURCES[NAME].files}
    files = _standin()
    table = tuple(
        fetch.RemoteFile(
            name,
            len(content),
            hashlib.sha256(content).hexdigest(),
            hashlib.md5(content).hexdigest(),
        )
        for name, content in files.items()
    )
    sources = {**fetch.SOURCES, NAME: replace(fetch.SOURCES[NAME], files=table)}
    monkeypatch.setattr(fetch, "SOURCES", MappingProxyType(sources))
    return files


@pytest.fixture
def mirror(published: dict[str, bytes]) -> Iterator[Mirror]:
    """A loopback HTTP server in a thread, serving the published files."""
    served = Mirror(dict(published))
    server = _Server(("127.0.0.1", 0), _Handler)
    server.mirror = served
    served.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _sums(text: str) -> dict[str, str]:
    """A checksum file's lines as file name → digest."""
    return {name: digest for digest, name in (line.split() for line in text.splitlines())}


def _landed(folder: Path) -> dict[str, bytes]:
    """The folder's files but the hidden .fetch.lock."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != ".fetch.lock"}


# ----------------------------------------------------------------------------- the table


def test_the_table_holds_the_published_checksums() -> None:
    # Independent reference: the MD5SUMS (the publishers') and SHA256SUMS beside the
    # files in ../shared/data, and the files' own sizes.
    for name in fetch.DATASETS:
        folder = _shared(name)
        if folder is None:  # pragma: no cover - a machine without ../shared/data
            pytest.skip("no ../shared/data")
        sums = {
            algorithm: _sums((folder / f).read_text())
            for algorithm, f in (("md5", "MD5SUMS"), ("sha256", "SHA256SUMS"))
        }
        table = fetch.SOURCES[name].files
        assert sorted(f.name for f in table) == sorted(sums["md5"])
        for remote in table:
            assert remote.md5 == sums["md5"][remote.name]
            assert remote.sha256 == sums["sha256"][remote.name]
            assert remote.size == (folder / remote.name).stat().st_size


def test_every_known_mirror_is_a_folder_url() -> None:
    assert set(KNOWN) == set(fetch.DATASETS) == {"mnist", "fashion-mnist"}
    for source in KNOWN.values():
        assert len(source.mirrors) >= 2  # one mirror down must not stop a learner
        assert all(
            m.startswith(("http://", "https://")) and m.endswith("/") for m in source.mirrors
        )


# ----------------------------------------------------------------------------- fetching


def test_a_full_fetch_lands_the_verified_files(
    tmp_path: Path, mirror: Mirror, published: dict[str, bytes]
) -> None:
    folder = fetch.fetch(NAME, tmp_path, mirrors=[mirror.url], progress=False)
    assert folder == tmp_path / NAME
    landed = _landed(folder)
    assert {k: v for k, v in landed.items() if k.endswith(".gz")} == published
    assert sorted(landed) == sorted([*published, "MD5SUMS", "SHA256SUMS"])  # no .part left
    # The checksum files list what hashlib computes from the served bytes.
    sha = _sums(landed["SHA256SUMS"].decode())
    assert sha == {k: hashlib.sha256(v).hexdigest() for k, v in published.items()}
    assert [r.range for r in mirror.downloads()] == [None] * 4


def test_a_checksum_mismatch_is_refused(tmp_path: Path, mirror: Mirror) -> None:
    mirror.wrong.add("t10k-images-idx3-ubyte.gz")
    with pytest.raises(fetch.FetchError) as caught:
        fetch.fetch(NAME, tmp_path, mirrors=[mirror.url], progress=False)
    message = str(caught.value)
    assert f"{mirror.url}t10k-images-idx3-ubyte.gz: wrong file, refused (SHA-256" in message
    assert "--mirror URL" in message and str(tmp_path / NAME) in message
    left = os.listdir(tmp_path / NAME)
    assert not any(n.startswith("t10k-images") for n in left)  # neither the file nor a .part
    assert "SHA256SUMS" not in left  # written only once every file is verified


def test_a_truncated_download_resumes_with_range(
    tmp_path: Path, mirror: Mirror, published: dict[str, bytes]
) -> None:
    name = "train-images-idx3-ubyte.gz"
    size = len(published[name])
    cut = size // 3
    mirror.truncate[name] = cut
    with pytest.raises(fetch.FetchError) as caught:
        fetch.fetch(NAME, tmp_path, mirrors=[mirror.url], progress=False)
    part = tmp_path / NAME / f"{name}.part"
    assert "closed before the whole file arrived" in str(caught.value)
    assert f"{cut:,} of {size:,} bytes are kept in {part}" in str(caught.value)
    assert part.read_bytes() == published[name][:cut]
    assert not (tmp_path / NAME / name).exists()

    del mirror.truncate[name]
    mirror.log.clear()
    fetch.fetch(NAME, tmp_path, mirrors=[mirror.url], progress=False)
    (resume,) = [r for r in mirror.log if r.path == name]
    assert resume.range == f"bytes={cut}-" and resume.status == 206
    assert resume.sent == size - cut  # only the rest travelled
    assert (tmp_path / NAME / name).read_bytes() == published[name]
    assert not part.exists()


def test_a_server_that_ignores_range_gives_a_restart(
    tmp_path: Path, mirror: Mirror, published: dict[str, bytes]
) -> None:
    name = "train-labels-idx1-ubyte.gz"
    (tmp_path / NAME).mkdir()
    (tmp_path / NAME / f"{name}.part").write_bytes(published[name][:100])
    mirror.ignore_range = True
    fetch.fetch(NAME, tmp_path, mirrors=[mirror.url], progress=False)
    (request,) = [r for r in mirror.log if r.path == name]
    assert request.range == "bytes=100-" and request.status == 200
    assert (tmp_path / NAME / name).read_bytes() == published[name]


def test_a_bad_partial_file_is_downloaded_afresh(
    tmp_path: Path, mirror: Mirror, published: dict[str, bytes]
) -> None:
    # A .part whose bytes are not the file's start (a bad earlier download): the resume
    # fails the checksum, so the same mirror is asked once more for the whole file.
    name = "train-labels-idx1-ubyte.gz"
    (tmp_path / NAME).mkdir()
    (tmp_path / NAME / f"{name}.part").write_bytes(b"\0" * 100)
    fetch.fetch(NAME, tmp_path, mirrors=[mirror.url], progress=False)
    assert [(r.range, r.status) for r in mirror.log if r.path == name] == [
        ("bytes=100-", 206),
        (None, 200),
    ]
    assert (tmp_path / NAME / name).read_bytes() == published[name]


def test_a_dead_mirror_then_a_good_one(
    tmp_path: Path, mirror: Mirror, published: dict[str, bytes]
) -> None:
    refused, missing = _dead_url(), mirror.url + "elsewhere/"  # no listener; 404
    fetch.fetch(NAME, tmp_path, mirrors=[refused, missing, mirror.url], progress=False)
    assert {k: v for k, v in _landed(tmp_path / NAME).items() if k.endswith(".gz")} == published
    assert [r.status for r in mirror.log if r.path.startswith("elsewhere/")] == [404] * 4


def test_when_every_mirror_fails_the_message_lists_them(tmp_path: Path, mirror: Mirror) -> None:
    refused, missing = _dead_url(), mirror.url + "elsewhere"  # no trailing slash: added
    with pytest.raises(fetch.FetchError) as caught:
        fetch.fetch(NAME, tmp_path, mirrors=[refused, missing], progress=False)
    lines = str(caught.value).splitlines()
    assert lines[0] == "Could not download train-images-idx3-ubyte.gz. Tried, in order:"
    assert lines[1].startswith(f"  {refused}train-images-idx3-ubyte.gz: cannot connect (")
    assert lines[2] == f"  {mirror.url}elsewhere/train-images-idx3-ubyte.gz: HTTP 404 Not Found"
    assert "--mirror URL" in lines[3] and "copy the published files" in lines[3]
    assert isinstance(caught.value, OSError)  # an environment problem, like a full disk


def test_the_known_mirrors_are_used_by_default(
    tmp_path: Path, mirror: Mirror, published: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = replace(fetch.SOURCES[NAME], mirrors=(_dead_url(), mirror.url))
    monkeypatch.setattr(fetch, "SOURCES", MappingProxyType({**fetch.SOURCES, NAME: source}))
    fetch.fetch(NAME, tmp_path, progress=False)
    assert (tmp_path / NAME / "t10k-labels-idx1-ubyte.gz").read_bytes() == published[
        "t10k-labels-idx1-ubyte.gz"
    ]


def test_present_files_are_not_downloaded_again(tmp_path: Path, mirror: Mirror) -> None:
    fetch.fetch(NAME, tmp_path, mirrors=[mirror.url], progress=False)
    mirror.log.clear()
    fetch.fetch(NAME, tmp_path, mirrors=[mirror.url], progress=False)
    assert mirror.log == []


def test_a_damaged_present_file_is_replaced(
    tmp_path: Path, mirror: Mirror, published: dict[str, bytes]
) -> None:
    fetch.fetch(NAME, tmp_path, mirrors=[mirror.url], progress=False)
    name = "t10k-labels-idx1-ubyte.gz"
    (tmp_path / NAME / name).write_bytes(b"not the file")
    mirror.log.clear()
    fetch.fetch(NAME, tmp_path, mirrors=[mirror.url], progress=False)
    assert [r.path for r in mirror.log] == [name]
    assert (tmp_path / NAME / name).read_bytes() == published[name]


def test_a_local_folder_is_a_mirror(tmp_path: Path, published: dict[str, bytes]) -> None:
    # Offline use: files copied from a USB stick or another machine, verified on the way.
    source = tmp_path / "stick"
    source.mkdir()
    for name, content in published.items():
        (source / name).write_bytes(content)
    folder = fetch.fetch(NAME, tmp_path / "data", mirrors=str(source), progress=False)
    assert {k: v for k, v in _landed(folder).items() if k.endswith(".gz")} == published


def test_files_copied_in_by_hand_are_verified_in_a_read_only_folder(
    tmp_path: Path, mirror: Mirror
) -> None:
    folder = fetch.fetch(NAME, tmp_path, mirrors=[mirror.url], progress=False)
    (folder / ".fetch.lock").unlink()
    mirror.log.clear()
    folder.chmod(0o555)  # a read-only copy (root writes anyway: hence the lock check below)
    try:
        assert fetch.fetch(NAME, tmp_path, mirrors=[mirror.url], progress=False) == folder
    finally:
        folder.chmod(0o755)
    assert mirror.log == [] and not (folder / ".fetch.lock").exists()


def test_one_progress_row_at_a_time_each_finished_file_a_line(
    tmp_path: Path, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    # A notebook cannot move the cursor up: a row per file would pile up there.
    fetch.fetch(NAME, tmp_path, mirrors=[mirror.url], progress=True)
    err = capsys.readouterr().err
    names = [f.name for f in fetch.SOURCES[NAME].files]
    for name in names[:-1]:
        assert f"{name}: verified" in err, err


def test_progress_goes_to_stderr_within_80_columns(
    tmp_path: Path,
    mirror: Mirror,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    fetch.fetch(NAME, tmp_path, mirrors=[mirror.url], progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = [line for line in captured.err.splitlines() if line.strip()]
    for remote in fetch.SOURCES[NAME].files:
        assert any(line.startswith(remote.name) for line in lines), captured.err
    assert all(len(line) <= 80 for line in lines), captured.err


# ----------------------------------------------------------------------------- errors


def test_an_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'mnist', 'fashion-mnist'. Got 'minst'.*'mnist'"):
        fetch.fetch("minst", tmp_path)


@pytest.mark.parametrize("bad", ["ftp://example.org/mnist/", "no/such/folder", []])
def test_a_bad_mirror_is_refused_before_any_download(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ValueError, match="'mirrors' parameter of fetch"):
        fetch.fetch(NAME, tmp_path, mirrors=bad, progress=False)  # type: ignore[arg-type]
    assert not (tmp_path / NAME).exists()


def test_an_unwritable_folder_says_where_else(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError, match=r"Cannot create the data folder .*--dir DIR"):
        fetch.fetch(NAME, tmp_path / "file", progress=False)


# ----------------------------------------------------------------------------- data.load


def test_cache_dir_is_the_env_or_the_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INITLAB_DATA", str(tmp_path / "env"))
    assert fetch.cache_dir() == tmp_path / "env"
    monkeypatch.delenv("INITLAB_DATA")
    if sys.platform != "linux":  # pragma: no cover
        pytest.skip("XDG_CACHE_HOME is the Linux convention")  # pragma: no cover
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert fetch.cache_dir() == tmp_path / "xdg" / "initlab" / "data"


def test_load_finds_the_fetched_files_through_initlab_data(
    tmp_path: Path, mirror: Mirror, published: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INITLAB_DATA", str(tmp_path))
    fetch.fetch(NAME, mirrors=[mirror.url], progress=False)
    ds = data.load(NAME, limit=5)
    assert ds.params["root"] == str(tmp_path / NAME)
    assert set(ds.params["verified"].values()) == {("md5", "sha256")}
    # Labels by an independent parse: gunzip, skip the 8-byte header, read bytes.
    labels = np.frombuffer(gzip.decompress(published["train-labels-idx1-ubyte.gz"])[8:], np.uint8)
    assert ds.y_train.tolist() == labels[:5].tolist()


def test_load_looks_in_the_user_cache_first(
    tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    if sys.platform != "linux":  # pragma: no cover
        pytest.skip("XDG_CACHE_HOME is the Linux convention")
    monkeypatch.delenv("INITLAB_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    fetched = fetch.fetch(NAME, mirrors=[mirror.url], progress=False)
    assert fetched == tmp_path / "xdg" / "initlab" / "data" / NAME
    assert data.locate(NAME) == fetched  # before any ../shared/data


def test_not_found_ends_with_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INITLAB_DATA", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError) as caught:
        data.load(NAME)
    assert str(caught.value).endswith("checksum-verified): initlab data fetch mnist")
    with pytest.raises(FileNotFoundError) as caught:
        data.load("fashion-mnist", root=tmp_path / "my data")
    assert str(caught.value).endswith(
        f"initlab data fetch fashion-mnist --dir '{tmp_path}/my data'"
    )


def test_a_damaged_fetched_file_names_the_command(
    tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INITLAB_DATA", str(tmp_path))
    fetch.fetch(NAME, mirrors=[mirror.url], progress=False)
    labels = tmp_path / NAME / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(labels.read_bytes())
    content[-1] ^= 0xFF
    labels.write_bytes(bytes(content))
    with pytest.raises(ValueError, match="Checksum mismatch") as caught:
        data.load(NAME, limit=2)
    assert str(caught.value).endswith("To download a verified copy: initlab data fetch mnist")
    fetch.fetch(NAME, mirrors=[mirror.url], progress=False)  # the command mends it
    assert data.load(NAME, limit=2).n_test == 2


def test_ctrl_c_keeps_the_partial_file_for_a_resume(
    tmp_path: Path, mirror: Mirror, published: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "train-images-idx3-ubyte.gz"

    def interrupt(self: object, count: int) -> None:
        raise KeyboardInterrupt  # after the first chunk was written

    monkeypatch.setattr(fetch._Silent, "advance", interrupt)
    with pytest.raises(KeyboardInterrupt):
        fetch.fetch(NAME, tmp_path, mirrors=[mirror.url], progress=False)
    monkeypatch.undo()
    kept = (tmp_path / NAME / f"{name}.part").read_bytes()
    assert 0 < len(kept) < len(published[name]) and published[name].startswith(kept)
    assert not (tmp_path / NAME / name).exists()
    mirror.log.clear()
    fetch.fetch(NAME, tmp_path, mirrors=[mirror.url], progress=False)
    assert [r.range for r in mirror.log if r.path == name] == [f"bytes={len(kept)}-"]
    assert (tmp_path / NAME / name).read_bytes() == published[name]


def test_a_file_of_the_wrong_size_is_refused_before_its_body(
    tmp_path: Path, mirror: Mirror, published: dict[str, bytes]
) -> None:
    name = "train-images-idx3-ubyte.gz"
    mirror.files[name] = b"<html>Not here any more</html>"  # a 200 page in its place
    with pytest.raises(fetch.FetchError) as caught:
        fetch.fetch(NAME, tmp_path, mirrors=[mirror.url], progress=False)
    size = len(published[name])
    assert f"{name}: it serves 30 bytes; {size:,} were published" in str(caught.value)
    assert _landed(tmp_path / NAME) == {}


def test_a_second_fetch_into_the_same_folder_waits_its_turn(
    tmp_path: Path, mirror: Mirror, published: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl

    waiting = threading.Event()
    monkeypatch.setattr(fetch._Silent, "note", lambda self, name, text: waiting.set())
    (tmp_path / NAME).mkdir()
    errors: list[BaseException] = []

    def second() -> None:
        try:
            fetch.fetch(NAME, tmp_path, mirrors=[mirror.url], progress=False)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    with (tmp_path / NAME / ".fetch.lock").open("a+b") as first:
        fcntl.flock(first, fcntl.LOCK_EX)  # as a first fetch would hold it
        thread = threading.Thread(target=second)
        thread.start()
        assert waiting.wait(timeout=30)  # it said it waits...
        assert mirror.log == [] and thread.is_alive()  # ...and downloads nothing meanwhile
        fcntl.flock(first, fcntl.LOCK_UN)
    thread.join(timeout=60)
    assert errors == [] and not thread.is_alive()
    assert {k: v for k, v in _landed(tmp_path / NAME).items() if k.endswith(".gz")} == published
