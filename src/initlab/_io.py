"""Writing outputs so that nothing half-written is ever left behind, and checking an
output path before any work is done.

Every file initlab writes (CSV, Parquet, PNG, HTML) goes to a temporary file in the same
folder and is renamed into place: a rename within one folder is atomic, so a reader (or a
process killed with -9 half way) sees either the old file, the new one, or none — never a
truncated one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

__all__ = ["atomic_path", "check_output_file", "check_output_folder", "write_atomic"]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    The temporary file is named ``.STEM.XXXXXXXX.SUFFIX.part`` (hidden, and matched by no
    ``*.SUFFIX`` glob), so a writer that picks the format from the file name (matplotlib,
    pandas) must be told the format. It is removed if the block raises; a process killed
    with -9 may leave it behind, never a half-written ``path``.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_text("done")
        >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
        ('done', ['out.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f"{path.suffix}.part", dir=path.parent
    )
    os.close(fd)
    tmp = Path(name)
    # mkstemp makes the file 0600; give it the permissions a plain open() would have.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then rename it into place."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def _check_name(path: Path, what: str, temporary: bool) -> None:
    """A path the OS can take: no NUL byte, and every name short enough (255 bytes),
    the file's own with room for its temporary's (``.NAME.XXXXXXXX.SUFFIX.part``)."""
    if "\0" in str(path):
        raise ValueError(f"{what}: expected a path without NUL bytes. Got {str(path)!r}.")
    for part in path.parts:
        try:
            size = len(os.fsencode(part)) + (16 if temporary and part == path.name else 0)
        except UnicodeError:
            raise ValueError(
                f"{what}: expected a path this system can encode. Got {str(path)!r}."
            ) from None
        if size > 255:
            raise ValueError(
                f"{what}: expected names of at most about 240 bytes in the path. Got "
                f"{str(path)!r}, with a name of {len(os.fsencode(part))} bytes. "
                "Use a shorter name."
            )


def _writable_folder(folder: Path, what: str) -> None:
    """The nearest existing ancestor of ``folder`` must be a writable directory."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ValueError(
            f"{what} {str(folder)!r} cannot be created: {str(probe)!r} is a file, not a folder. "
            "Choose a path in a folder."
        )
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(
            f"{what} {str(folder)!r} cannot be written: no permission to write in "
            f"{str(probe)!r}. Choose a folder you can write to."
        )


def check_output_file(path: str | Path, suffixes: Sequence[str], what: str) -> Path:
    """Check, before any work, that ``path`` can be written as one of ``suffixes``.

    Raises:
        ValueError: a NUL byte or a name too long, an unknown suffix, a folder where the
            file should go, or a parent that is a file or cannot be written.
    """
    path = Path(path)
    _check_name(path, what, temporary=True)
    if path.suffix.lower() not in suffixes:
        raise ValueError(
            f"{what} {str(path)!r} must end in {' or '.join(suffixes)}. "
            f"Got {path.suffix or 'no extension'!r}."
        )
    if path.is_dir():
        raise ValueError(
            f"{what} {str(path)!r} is a folder. "
            f"Give a file name, e.g. {path / ('out' + suffixes[0])}."
        )
    _writable_folder(path.parent if str(path.parent) else Path("."), f"the folder of {what}")
    return path


def check_output_folder(path: str | Path, what: str) -> Path:
    """Check, before any work, that ``path`` is or can become a writable folder.

    Raises:
        ValueError: a NUL byte or a name too long, ``path`` is a file, lies under a file,
            or cannot be written.
    """
    path = Path(path)
    _check_name(path / "index.html", what, temporary=True)  # what a report writes there
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"{what} {str(path)!r} is a file. Give a folder (it is created if missing)."
        )
    _writable_folder(path, what)
    return path
