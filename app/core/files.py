"""Files and folders readable by their owner only: keys, the database, backups.

Standard library only, so that every layer (the key authority included) can use it.
"""

from __future__ import annotations

import os
from pathlib import Path


def make_private_folder(path: Path) -> None:
    """Make ``path`` and its missing parents, each owner-only (0700) whatever the umask (mkdir's
    own ``parents`` ignores the mode). A folder that exists is the operator's to set."""
    for folder in reversed([path, *path.parents]):
        if folder.exists():
            continue
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made meanwhile by someone else: theirs
        folder.chmod(0o700)  # mkdir's mode is filtered by the umask


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty and readable by its owner only (0600, whatever the umask); False if
    it exists. O_EXCL: a file someone else put there is never taken over."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    return True
