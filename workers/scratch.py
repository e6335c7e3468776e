"""A worker process's scratch directory; what a killed worker left behind goes when the next starts.

Each worker holds an exclusive flock on a file in its own directory for as long as it lives.
The kernel drops the lock when the process dies, SIGKILL included, so a directory whose lock
can be taken belongs to nobody: safe with any number of workers on one host, and no age
threshold to guess (a live job's files can sit untouched for as long as a transcode lasts).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger("cowatch.scratch")

PREFIX = "cowatch-worker-"
LOCK_NAME = ".lock"


def _claim(directory: Path) -> tuple[bool, int | None]:
    """Whether `directory` is ours to remove, and the fd holding its lock while we do."""
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDWR)
    except FileNotFoundError:
        return True, None  # no lock file: another sweeper was halfway through removing it
    except OSError:
        return False, None  # another user's worker: not ours to judge
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False, None  # its worker is alive
    return True, fd


def sweep(parent: Path) -> list[Path]:
    """Remove the scratch directories under `parent` whose worker is gone; the ones removed."""
    removed = []
    for directory in sorted(parent.glob(f"{PREFIX}*")):
        ours, fd = _claim(directory)
        if not ours:
            continue
        try:
            shutil.rmtree(directory, ignore_errors=True)
        finally:
            if fd is not None:
                os.close(fd)
        removed.append(directory)
    if removed:
        log.info("removed %d scratch directories left by stopped workers", len(removed))
    return removed


class Scratch:
    """This process's directory for job files, locked for as long as the process lives."""

    def __init__(self, parent: Path | None = None) -> None:
        parent = Path(parent or tempfile.gettempdir())
        sweep(parent)
        # Created and locked under a name sweepers ignore, then renamed: no sweeper ever sees
        # the final name without the lock held.
        building = Path(tempfile.mkdtemp(prefix=".cowatch-new-", dir=parent))
        self._fd = os.open(building / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self.path = parent / f"{PREFIX}{building.name.removeprefix('.cowatch-new-')}"
        building.rename(self.path)

    def close(self) -> None:
        if self._fd < 0:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)
        self._fd = -1
