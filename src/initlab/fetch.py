"""Download MNIST and Fashion-MNIST into a cache folder, verified against published checksums.

:func:`fetch` gets the four standard IDX files of a data set (training and test images and
labels, gzipped) from a list of known public mirrors, tried in order for each file, and
keeps a file only when its size, SHA-256 and the publisher's MD5 all match the table
below. A download goes to ``<file>.part`` and is renamed into place once verified, so the
folder never holds a half-written or unverified ``.gz``; an interrupted download is resumed
with an HTTP ``Range`` request (or restarted, if the server ignores it). Files already
present and verified are not downloaded again. Beside the files it writes ``SHA256SUMS``
and ``MD5SUMS``, which :func:`initlab.data.load` checks on every load.

Where: ``<root>/<name>/`` when ``root`` is given, else ``<cache_dir()>/<name>/``, where
:func:`cache_dir` is ``$INITLAB_DATA`` if set, else the platform's user cache folder
(``~/.cache/initlab/data`` on Linux). :func:`initlab.data.locate` looks in the same places.

Only the standard library's ``urllib`` talks to the network; nothing is downloaded unless
:func:`fetch` is called (the command ``initlab data fetch mnist`` calls it).

Example:
    >>> from initlab import fetch
    >>> fetch.DATASETS
    ('mnist', 'fashion-mnist')
    >>> [f.name for f in fetch.SOURCES["mnist"].files][:2]
    ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz']
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import importlib.metadata
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

from initlab._io import write_atomic
from initlab._validation import check_choice, param_message

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

__all__ = ["DATASETS", "SOURCES", "FetchError", "RemoteFile", "Source", "cache_dir", "fetch"]

#: The environment variable naming the data folder (read by :func:`cache_dir`).
ENV = "INITLAB_DATA"
_CHUNK = 1 << 16  # bytes per read: small enough for a smooth bar, large enough to be cheap
_TIMEOUT = 30.0  # seconds a connection may stay silent before the mirror counts as failed
_SCHEMES = ("http", "https", "file")


@dataclass(frozen=True)
class RemoteFile:
    """One published file: its name on every mirror, its size and its checksums."""

    name: str  # the file name, the same on every mirror and on disk
    size: int  # bytes, as published
    sha256: str  # hex digest (computed from the publisher's file, whose MD5 matches)
    md5: str  # hex digest, the publisher's own (LeCun's page; Zalando's README)


@dataclass(frozen=True)
class Source:
    """A data set's files and the mirrors that serve them."""

    files: tuple[RemoteFile, ...]  # all of them make the data set
    mirrors: tuple[str, ...]  # base URLs, tried in order for each file (file name appended)


# The MD5s are the publishers'; they and the SHA-256s were checked against the files
# under ../shared/data (see its PROVENANCE.md), byte copies of the publishers' files.
SOURCES: Mapping[str, Source] = MappingProxyType(
    {
        "mnist": Source(
            files=(
                RemoteFile(
                    "train-images-idx3-ubyte.gz",
                    9912422,
                    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                ),
                RemoteFile(
                    "train-labels-idx1-ubyte.gz",
                    28881,
                    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                    "d53e105ee54ea40749a09fcbcd1e9432",
                ),
                RemoteFile(
                    "t10k-images-idx3-ubyte.gz",
                    1648877,
                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                    "9fb629c4189551a2d022fa330f9573f3",
                ),
                RemoteFile(
                    "t10k-labels-idx1-ubyte.gz",
                    4542,
                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                    "ec29112dd5afa0611ce80d1b7f02629c",
                ),
            ),
            mirrors=(
                "https://ossci-datasets.s3.amazonaws.com/mnist/",  # PyTorch's (torchvision)
                "https://storage.googleapis.com/cvdf-datasets/mnist/",  # TensorFlow's
            ),
        ),
        "fashion-mnist": Source(
            files=(
                RemoteFile(
                    "train-images-idx3-ubyte.gz",
                    26421880,
                    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                ),
                RemoteFile(
                    "train-labels-idx1-ubyte.gz",
                    29515,
                    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                    "25c81989df183df01b3e8a0aad5dffbe",
                ),
                RemoteFile(
                    "t10k-images-idx3-ubyte.gz",
                    4422102,
                    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                    "bef4ecab320f06d8554ea6380940ec79",
                ),
                RemoteFile(
                    "t10k-labels-idx1-ubyte.gz",
                    5148,
                    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                    "bb300cfdad3c16e7a12a480ee83cd310",
                ),
            ),
            mirrors=(
                # Zalando's own (plain HTTP only: the checksums, not the transport, vouch).
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",  # Keras's
                "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            ),
        ),
    }
)

#: The data sets :func:`fetch` knows.
DATASETS: tuple[str, ...] = tuple(SOURCES)


class FetchError(OSError):
    """Every mirror failed for a file: the message lists each URL tried, why it failed,
    what was kept for a resume, and what to do."""


def cache_dir() -> Path:
    """The folder :func:`fetch` downloads into and :func:`initlab.data.locate` searches.

    ``$INITLAB_DATA`` if set and non-empty (``~`` expanded), else the platform's user cache
    folder for initlab plus ``data`` (``platformdirs.user_cache_dir("initlab") / "data"``:
    ``~/.cache/initlab/data`` on Linux, ``~/Library/Caches/initlab/data`` on macOS).
    Nothing is created.

    Returns:
        The folder; each data set lives in a sub-folder named after it.

    Example:
        >>> import os
        >>> saved = os.environ.pop("INITLAB_DATA", None)
        >>> cache_dir().name
        'data'
        >>> os.environ["INITLAB_DATA"] = "~/my-data"
        >>> cache_dir() == Path.home() / "my-data"
        True
        >>> _ = os.environ.pop("INITLAB_DATA") if saved is None else os.environ.update(
        ...     INITLAB_DATA=saved
        ... )
    """
    given = os.environ.get(ENV)
    if given:
        return Path(given).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("initlab")) / "data"


# --------------------------------------------------------------------------- checks


def _mirror_urls(mirrors: str | Sequence[str] | None, default: tuple[str, ...]) -> list[str]:
    """Base URLs ending with '/': the given ones (a local folder becomes file://)."""
    if mirrors is None:
        return list(default)
    given = [mirrors] if isinstance(mirrors, str | os.PathLike) else mirrors
    if not isinstance(given, Sequence) or not given:
        raise (TypeError if not isinstance(given, Sequence) else ValueError)(
            param_message(
                "fetch",
                "mirrors",
                "a URL or a non-empty list of URLs (http://, https://, file://) or folders",
                mirrors,
            )
        )
    urls = []
    for mirror in given:
        if isinstance(mirror, os.PathLike) or (
            isinstance(mirror, str) and "://" not in mirror and Path(mirror).expanduser().is_dir()
        ):
            urls.append(Path(mirror).expanduser().resolve().as_uri() + "/")
            continue
        scheme = urllib.parse.urlsplit(mirror).scheme if isinstance(mirror, str) else ""
        if scheme not in _SCHEMES:
            raise (ValueError if isinstance(mirror, str) else TypeError)(
                param_message(
                    "fetch",
                    "mirrors",
                    "URLs of folders (http://, https://, file://) or existing local folders",
                    mirror,
                    "Give the folder that holds the files, e.g. "
                    "https://ossci-datasets.s3.amazonaws.com/mnist/.",
                )
            )
        urls.append(mirror if mirror.endswith("/") else mirror + "/")
    return urls


def _digests_match(path: Path, remote: RemoteFile) -> str | None:
    """None if ``path`` is the published file, else what differs (size or checksum)."""
    size = path.stat().st_size
    if size != remote.size:
        return f"{size:,} bytes where {remote.size:,} were published"
    sha256 = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            sha256.update(chunk)
            md5.update(chunk)
    if sha256.hexdigest() != remote.sha256:
        return f"SHA-256 {sha256.hexdigest()} where {remote.sha256} was published"
    if md5.hexdigest() != remote.md5:
        return f"MD5 {md5.hexdigest()} where {remote.md5} was published"
    return None


# --------------------------------------------------------------------------- progress


class _Bar(Protocol):
    """What a download reports to: a total when known, then bytes as they arrive."""

    def start(self, name: str, total: int | None, done: int) -> None: ...

    def advance(self, count: int) -> None: ...

    def note(self, name: str, text: str) -> None: ...


class _Silent:
    def start(self, name: str, total: int | None, done: int) -> None:
        pass

    def advance(self, count: int) -> None:
        pass

    def note(self, name: str, text: str) -> None:
        pass


class _RichBar:
    """A rich progress row for the file being fetched, on stderr: bytes, total, speed,
    time left; each finished file is a line above it."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: TaskID | None = None
        self._tasks: dict[str, TaskID] = {}

    def start(self, name: str, total: int | None, done: int) -> None:
        task = self._tasks.get(name)
        if task is None:
            # One live row at a time: the file before is finished (verified, or fetch has
            # raised), so its row becomes a printed line. A notebook, which cannot move
            # the cursor up, then shows one bar, not a growing pile of them.
            for finished, row in self._tasks.items():
                self._progress.remove_task(row)
                self.note(finished, "verified")
            self._tasks.clear()
            task = self._progress.add_task(name, total=total, completed=done)
            self._tasks[name] = task
        else:  # a retry on the next mirror, or a restart: the row starts over from `done`
            self._progress.reset(task, total=total, completed=done)
        self._task = task

    def advance(self, count: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, count)

    def note(self, name: str, text: str) -> None:
        self._progress.console.print(f"{name}: {text}", markup=False, highlight=False)


@contextmanager
def _bar(progress: bool) -> Iterator[_Bar]:
    if not progress:
        yield _Silent()
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from initlab._repr import progress_console

    # 26 + 1 + 14 + 1 + 17 + 1 + 10 + 1 + 7 = 78 columns: fits an 80-column terminal.
    columns = (
        TextColumn("{task.description}", style="bold"),
        BarColumn(bar_width=14),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=progress_console()) as shown:
        yield _RichBar(shown)


# --------------------------------------------------------------------------- one download


class _Failed(Exception):
    """This mirror cannot serve this file now; the message says why."""


def _user_agent() -> str:
    try:
        return f"initlab/{importlib.metadata.version('initlab')} (python-urllib)"
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a source tree
        return "initlab (python-urllib)"


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        reason = error.reason
        text = reason.strerror if isinstance(reason, OSError) and reason.strerror else reason
        local = isinstance(reason, FileNotFoundError | PermissionError | IsADirectoryError)
        return f"{'cannot read' if local else 'cannot connect'} ({text})"
    if isinstance(error, http.client.IncompleteRead):
        return "the connection closed before the whole file arrived"
    if isinstance(error, TimeoutError):
        return f"no data for {_TIMEOUT:g} s (timed out)"
    return f"{type(error).__name__}: {error}"


def _download(url: str, part: Path, remote: RemoteFile, bar: _Bar) -> bool:
    """Fetch ``url`` into ``part``, resuming from its size; True if it resumed.

    Raises:
        _Failed: the mirror failed (HTTP error, no connection, a short or oversized body).
    """
    offset = part.stat().st_size if part.exists() else 0
    if offset >= remote.size:  # complete (to be verified) or longer than it can be
        if offset == remote.size:
            return True
        part.unlink()
        offset = 0
    headers = {"User-Agent": _user_agent()}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=_TIMEOUT)
    except urllib.error.HTTPError as error:
        error.close()
        if error.code == 416 and offset:  # the range is past the end: the .part is bad
            part.unlink()
            return _download(url, part, remote, bar)
        raise _Failed(_reason(error)) from error
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise _Failed(_reason(error)) from error
    with response:
        status = response.status  # None for file:// URLs, which ignore Range
        length = response.headers.get("Content-Length")
        resumed = False
        if offset and status == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if not match or int(match[1]) != offset:
                raise _Failed(
                    f"asked for bytes {offset}- and got {response.headers.get('Content-Range')!r}"
                )
            resumed = True
        else:
            # A full body: the server ignored the Range (or none was asked); start over.
            offset = 0
            if length is not None and length.isdigit() and int(length) != remote.size:
                raise _Failed(f"it serves {int(length):,} bytes; {remote.size:,} were published")
        total = offset + int(length) if length is not None and length.isdigit() else remote.size
        bar.start(remote.name, total, offset)
        with part.open("r+b" if resumed else "wb") as handle:
            handle.seek(offset)
            handle.truncate()  # a restart drops what an ignored Range would have kept
            written = offset
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as error:
                    raise _Failed(_reason(error)) from error
                if not chunk:
                    break
                written += len(chunk)
                if written > remote.size:
                    raise _Failed(f"it sent more than the {remote.size:,} bytes published")
                handle.write(chunk)  # a full disk raises OSError: not the mirror's fault
                bar.advance(len(chunk))
            handle.flush()
            os.fsync(handle.fileno())  # the rename that follows must not outrun the data
        if written < remote.size:
            raise _Failed(
                f"the body ended after {written:,} of {remote.size:,} bytes"
                if length is None
                else _reason(http.client.IncompleteRead(b""))
            )
    return resumed


def _fetch_file(folder: Path, remote: RemoteFile, mirrors: list[str], bar: _Bar) -> bool:
    """Make ``folder/remote.name`` the verified published file; True if it downloaded."""
    target = folder / remote.name
    if target.is_file():
        if _digests_match(target, remote) is None:
            bar.start(remote.name, remote.size, remote.size)  # a full row: already here
            return False
        bar.note(remote.name, "present but not the published file; downloading it again")
    part = folder / f"{remote.name}.part"
    tried: list[str] = []
    for base in mirrors:
        url = base + remote.name
        # A resumed .part that fails the checksum may hold bad bytes from an earlier
        # mirror or run: then this mirror gets one fresh try before the next one.
        for _attempt in range(2):
            try:
                resumed = _download(url, part, remote, bar)
            except _Failed as error:
                tried.append(f"  {url}: {error}")
                break
            wrong = _digests_match(part, remote)
            if wrong is None:
                os.replace(part, target)
                return True
            part.unlink()
            if not resumed:
                tried.append(f"  {url}: wrong file, refused ({wrong})")
                break
    raise FetchError(_failure_message(folder, remote, tried, part))


def _failure_message(folder: Path, remote: RemoteFile, tried: list[str], part: Path) -> str:
    kept = ""
    if part.exists() and part.stat().st_size:
        kept = (
            f"\n{part.stat().st_size:,} of {remote.size:,} bytes are kept in {part}: run "
            "the same command again to resume from there."
        )
    return (
        f"Could not download {remote.name}. Tried, in order:\n"
        + "\n".join(tried)
        + kept
        + "\nWhat to do: check the network connection and run again; or name a mirror that "
        "has the file (initlab data fetch ... --mirror URL, or fetch(..., mirrors=[URL])); "
        f"or copy the published files into {folder} by hand and run again to verify them."
    )


# --------------------------------------------------------------------------- fetch


def fetch(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    mirrors: str | Sequence[str] | None = None,
    progress: bool = True,
) -> Path:
    """Download a data set's files into ``<root or cache_dir()>/<name>/``, verified.

    For each file (in :data:`SOURCES`): if it is present and matches its published size,
    SHA-256 and MD5, nothing is downloaded; else the mirrors are tried in order. A download
    goes to ``<file>.part``, resumed with an HTTP ``Range`` request when a ``.part`` is
    there (restarted if the server sends the whole file instead), and is renamed onto
    ``<file>`` only when it matches. A mismatch is refused: the bytes are deleted and the
    next mirror tried. Then ``SHA256SUMS`` and ``MD5SUMS`` are written beside the files,
    so that :func:`initlab.data.load` verifies them on every load.

    Args:
        name: ``"mnist"`` or ``"fashion-mnist"`` (see :data:`DATASETS`).
        root: the data folder; the files go to ``<root>/<name>/``. None for
            :func:`cache_dir` (``$INITLAB_DATA``, else the user cache folder).
        mirrors: base URLs (or local folders) to use instead of the known mirrors, tried in
            order; each must serve the files under their published names.
        progress: show a progress bar per file on stderr (rich): bytes, total, speed.

    Returns:
        The folder holding the files: pass its parent as ``root=`` to
        :func:`initlab.data.load`, or nothing at all when ``root`` was None.

    Raises:
        ValueError: an unknown name (the message lists the known ones), a bad mirror URL.
        TypeError: an argument of the wrong type.
        FetchError: every mirror failed for a file (an ``OSError``): the message lists each
            URL and why, what was kept for a resume, and what to do.
        OSError: the folder cannot be created or written.

    Example:
        >>> folder = fetch("mnist", progress=False)  # doctest: +SKIP
        >>> sorted(p.name for p in folder.glob("*.gz"))  # doctest: +SKIP
        ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz', ...]
    """
    name = check_choice("fetch", "name", name, SOURCES)
    if not isinstance(progress, bool):
        raise TypeError(param_message("fetch", "progress", "True or False", progress))
    if root is not None and not isinstance(root, str | os.PathLike):
        raise TypeError(param_message("fetch", "root", "a folder (str or Path) or None", root))
    source = SOURCES[name]
    urls = _mirror_urls(mirrors, source.mirrors)
    folder = (Path(root).expanduser() if root is not None else cache_dir()) / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(
            f"Cannot create the data folder {folder} ({error.strerror}). Choose another with "
            f"--dir DIR (root= in Python) or the environment variable {ENV}=DIR."
        ) from error
    with _bar(progress) as bar:
        present = [(folder / f.name).is_file() for f in source.files]
        if all(present) and all(_digests_match(folder / f.name, f) is None for f in source.files):
            # Nothing to download (files fetched before, or copied in by hand): verified
            # without the lock, so a read-only copy can be checked too.
            for remote in source.files:
                bar.start(remote.name, remote.size, remote.size)
            if not ((folder / "SHA256SUMS").is_file() and (folder / "MD5SUMS").is_file()):
                _write_sums(folder, source.files)
            return folder
        with _locked(folder, bar):
            for remote in source.files:
                _fetch_file(folder, remote, urls, bar)
            _write_sums(folder, source.files)
    return folder


@contextmanager
def _locked(folder: Path, bar: _Bar) -> Iterator[None]:
    """Hold ``folder/.fetch.lock``: a second fetch into the same folder waits its turn
    (two writers of one .part would ruin each other's bytes). No lock where fcntl is
    missing (Windows): the checksums still refuse a ruined file."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with (folder / ".fetch.lock").open("a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            bar.note(folder.name, f"another fetch is writing into {folder}; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_sums(folder: Path, files: Sequence[RemoteFile]) -> None:
    """Write (or update) SHA256SUMS and MD5SUMS, keeping lines for other files."""
    ours = {f.name for f in files}
    for sums_name, field in (("SHA256SUMS", "sha256"), ("MD5SUMS", "md5")):
        sums = folder / sums_name
        kept = []
        if sums.is_file():
            for line in sums.read_text().splitlines():
                parts = line.split(maxsplit=1)
                if len(parts) == 2 and Path(parts[1].lstrip("*")).name in ours:
                    continue
                kept.append(line)
        lines = kept + [f"{getattr(f, field)}  {f.name}" for f in files]
        text = "\n".join(lines) + "\n"
        if not sums.is_file() or sums.read_text() != text:
            write_atomic(sums, functools.partial(Path.write_text, data=text))
