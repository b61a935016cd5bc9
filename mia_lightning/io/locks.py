"""Advisory file locks that die with their holder.

`fcntl.flock` locks are released by the kernel when the holding process exits, even on
SIGKILL, so a crashed job never leaves a stale lock behind: the next job simply takes
the lock and resumes from the last checkpoint.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path


class FileLock:
    """An exclusive lock on `path` (created if missing)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock if free; False (immediately) if another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def acquire(self, timeout_s: float = float("inf"), poll_s: float = 0.5) -> bool:
        """Wait up to `timeout_s` for the lock; True once held."""
        deadline = time.monotonic() + timeout_s
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def locked(path: str | os.PathLike, timeout_s: float = float("inf")) -> Iterator[FileLock]:
    lock = FileLock(path)
    if not lock.acquire(timeout_s):
        raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for lock {path}")
    try:
        yield lock
    finally:
        lock.release()
