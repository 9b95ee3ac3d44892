"""The outbox: an append-only JSON-lines file that holds each action id at most once.

Activities are retried and several worker processes may share one state directory, so
the check "is this id already in the file?" and the append happen under one exclusive
`flock` on the file itself. Each process keeps the ids it has already read and only
reads what other processes appended since, so a delivery costs O(new lines).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path

from engine.state import Action, ActionResult

_CHUNK = 1 << 16


class Outbox:
    """One outbox file; `append` writes a record unless its id is already there."""

    def __init__(self, path: Path) -> None:
        """Use the file at `path` (created, with its folder, on the first append)."""
        self.path = Path(path)
        self._ids: set[str] = set()
        self._scanned = 0
        self._inode: tuple[int, int] | None = None
        # flock serialises processes (and separate open() calls); this lock protects the
        # in-process id cache shared by threads of this process.
        self._lock = threading.Lock()

    def append(self, record_id: str, record: dict) -> bool:
        """Append `record` as one line; False when `record_id` was already in the file."""
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                size = self._catch_up(fd)
                if size > self._scanned:
                    # Under the exclusive lock nobody is mid-write: the last line lost its
                    # newline (a writer died, or a hand edit). Count it, and close it so
                    # our line stays parseable.
                    self._remember(os.pread(fd, size - self._scanned, self._scanned))
                    line = b"\n" + line
                if record_id in self._ids:
                    return False
                try:
                    _write_all(fd, line)
                    os.fsync(fd)
                except OSError:
                    # A full disk (or a file size limit) can take part of the line: cut it off
                    # again, so that the retry appends a whole line and readers never see half.
                    os.ftruncate(fd, size)
                    raise
                self._ids.add(record_id)
                self._scanned = size + len(line)
                return True
            finally:
                os.close(fd)  # also releases the flock

    def ids(self) -> set[str]:
        """Every id in the file now (reads under the lock; for tests and tools)."""
        with self._lock:
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return set()
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                self._catch_up(fd)
                return set(self._ids)
            finally:
                os.close(fd)

    def _catch_up(self, fd: int) -> int:
        """Read complete lines appended since the last call; return the file size."""
        stat = os.fstat(fd)
        inode = (stat.st_dev, stat.st_ino)
        if inode != self._inode or stat.st_size < self._scanned:
            # Replaced or truncated (e.g. rotated by an operator): start over.
            self._ids.clear()
            self._scanned = 0
            self._inode = inode
        position, pending = self._scanned, b""
        while position < stat.st_size:
            chunk = os.pread(fd, min(_CHUNK, stat.st_size - position), position)
            if not chunk:
                break
            position += len(chunk)
            *lines, pending = (pending + chunk).split(b"\n")
            for raw in lines:
                self._remember(raw)
        # A trailing line without its newline is still being written or was cut off;
        # read it again next time.
        self._scanned = position - len(pending)
        return stat.st_size

    def _remember(self, raw: bytes) -> None:
        try:
            record_id = json.loads(raw).get("id")
        except (ValueError, AttributeError):
            return  # a cut-off line holds no complete record
        if isinstance(record_id, str):
            self._ids.add(record_id)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


_OUTBOXES: dict[Path, Outbox] = {}
_OUTBOXES_LOCK = threading.Lock()


def outbox_at(path: Path) -> Outbox:
    """The process-wide Outbox for a path, so its id cache is shared by all deliveries."""
    key = Path(os.path.abspath(path))
    with _OUTBOXES_LOCK:
        return _OUTBOXES.setdefault(key, Outbox(key))


async def send_to_outbox(action: Action, path: Path) -> ActionResult:
    """Record the action in the outbox (once, however often this is called)."""
    record = action.model_dump(mode="json")
    record["recorded_at"] = datetime.now(timezone.utc).isoformat()
    # File locks block; keep them off the event loop that also runs other activities.
    written = await asyncio.to_thread(outbox_at(path).append, action.id, record)
    return ActionResult(status="done", detail=f"outbox {path}" + ("" if written else " (already there)"))
