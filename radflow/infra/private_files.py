"""Files and directories only their owner can read: radflow's stores hold names and MRNs.

Used for the SQLite read models, the DICOM spool, report attachments and the audit log.
Existing files are tightened too (stores created by older versions were 0644). Existing
directories are left as they are (a configured path may sit in a shared directory); the
ones created here are 0700.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path | str) -> Path:
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:  # another process made it meanwhile
            continue
        os.chmod(d, DIR_MODE)  # mkdir's mode is masked by the umask
    return path


def private_file(path: Path | str) -> Path:
    """Create (empty) or tighten `path` before a library such as sqlite3 opens it.

    SQLite creates its -wal/-shm/-journal files with the main file's mode, so they follow.
    """
    path = Path(path)
    private_dir(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    os.chmod(path, FILE_MODE)
    for suffix in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.chmod(side, FILE_MODE)
    return path
