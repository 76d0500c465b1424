"""Key files: read only when their owner alone can read them, created owner-only.

The payload keys and the search HMAC key protect every patient's record in Temporal: a key
file other local users can read is refused with the reason, the way ssh refuses a
group-readable private key, instead of being used quietly.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from radflow.infra.private_files import FILE_MODE, private_dir


class KeyFileError(ValueError):
    """A key file is missing, readable by others, or malformed (the message says which and where)."""


def read_private(path: Path | str, what: str) -> str:
    path = Path(path)
    try:
        info = path.stat()
    except OSError as err:
        raise KeyFileError(f"{what} {path}: {err.strerror or err}") from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError(f"{what} {path}: not a regular file")
    if info.st_mode & 0o077:
        raise KeyFileError(f"{what} {path} is readable by group/others (mode {stat.S_IMODE(info.st_mode):04o}): "
                           f"chmod 600 {path}")
    return path.read_text(encoding="utf-8")


def create_private(path: Path | str, text: str) -> bool:
    """Write `text` to a new 0600 file; False (nothing written) when the file already exists."""
    path = Path(path)
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    return True
