"""Atomic file writing (every file archspec writes goes to a temporary file in the same
folder and is renamed into place, so an interrupted run leaves the old file or none), and
what kind of file a path holds, read from its first bytes."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; on success rename it onto ``path``."""
    import tempfile  # only a write needs it (a cold `archspec cost` writes nothing)

    from .errors import ArchspecError

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise ArchspecError(f"{path}: cannot write: {e.strerror or e}") from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise ArchspecError(f"{path}: cannot write: {e.strerror or e}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_umask() -> int:
    mask = os.umask(0)  # read once, at import: os.umask can only be read by setting it
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


# ---- what a file holds ---------------------------------------------------------------------
_ZIP, _PICKLE, _ONNX = b"PK\x03\x04", b"\x80", b"\x08"


def content_kind(path: Path) -> str:
    """``torch`` (a zip or a pickle), ``onnx`` (a protobuf starting with field 1,
    ``ir_version``), ``binary`` (other bytes with a NUL) or ``spec`` (text)."""
    head = _head(path)
    if head.startswith(_ZIP) or head.startswith(_PICKLE):
        return "torch"
    if head.startswith(_ONNX):
        return "onnx"
    return "binary" if b"\x00" in head else "spec"


def describe(path: Path) -> str:
    """A few words on what a file holds, for errors that found the wrong kind."""
    return {"onnx": "an ONNX file", "torch": "a torch file", "binary": "a binary file",
            "spec": "a text file (a YAML spec?)"}[content_kind(Path(path))]


def _head(path: Path, size: int = 512) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError as e:
        from .errors import ArchspecError

        raise ArchspecError(f"{path}: cannot be read ({e.strerror})") from None
