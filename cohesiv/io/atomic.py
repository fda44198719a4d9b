"""Atomic file writes: write to a temporary name in the same folder, then rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Mode of a file created the usual way (``open``): 0o666 minus the process umask. ``mkstemp``
#: creates 0o600 files, which would make outputs unreadable by other users of a shared folder.
FILE_MODE = 0o666 & ~_read_umask()


def temp_file_beside(path: Path, prefix: str, suffix: str = "") -> Path:
    """Create an empty temporary file in ``path``'s folder with the usual file mode; return its path."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    If the body raises (or the process dies), ``path`` is untouched and the temporary file is
    removed (or, after ``kill -9``, left with a ``.tmp-`` name that readers ignore).

    Args:
        path: the final file name.
        suffix: suffix of the temporary file (default: the suffix of ``path``, so that
            libraries that pick a format by extension, such as OpenCV, still work).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = temp_file_beside(path, f".tmp-{path.stem}-", path.suffix if suffix is None else suffix)
    try:
        yield tmp_path
        os.chmod(tmp_path, FILE_MODE)  # again: some writers (safetensors) recreate the file as 0600
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
