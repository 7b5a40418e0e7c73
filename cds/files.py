"""Secrets the service keeps in its data directory: written once, owner-readable, safe when workers race."""

from __future__ import annotations

import os
from pathlib import Path


def create_once(path: Path, data: bytes) -> None:
    """Create ``path`` (mode 0600) holding ``data`` unless it exists; the first process to create it wins.

    The content is written to a private temporary file and hard-linked into place, which is atomic and fails if
    the file exists: a reader never sees a half-written file, and two workers starting together agree on one.
    """
    if path.exists():
        return
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
