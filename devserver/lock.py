"""One process per state folder: an exclusive lock on `<state dir>/lock`.

Two `lifecycle dev` on one folder would run two Temporal servers on one SQLite file and
append to one outbox. `fcntl.flock` is released by the kernel when the process dies, even by
kill -9, so a crash never leaves a stale lock behind; the pid written into the file only
makes the refusal say who holds it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

LOCK_NAME = "lock"


class StateDirLocked(RuntimeError):
    """Another process holds the state folder; the message is one line."""


class StateDirLock:
    """An exclusive, non-blocking lock on a state folder, held until `release()` or exit."""

    def __init__(self, state_dir: str | Path) -> None:
        """Describe the lock; nothing is taken until `acquire()` or entering the context."""
        self.path = Path(state_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> StateDirLock:
        """Take the lock or raise StateDirLocked naming the holder's pid."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StateDirLocked(
                f"{self.path.parent} is in use by another process (pid {holder}); "
                "stop it, or give this one another state folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Let go of the lock (closing the file releases it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StateDirLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
