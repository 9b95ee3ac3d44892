"""The embedded Temporal dev server: start it, find ports, lock a state folder.

Used by `lifecycle dev`, `lifecycle demo`, the tests and the benchmarks; nothing here
imports the engine, the workflows or the command line.
"""

from devserver.lock import StateDirLock, StateDirLocked
from devserver.server import (
    SEARCH_ATTRIBUTES,
    DevServer,
    DevServerError,
    PortTaken,
    ensure_port_free,
    ensure_search_attributes,
    free_port,
    temporal_binary,
)

__all__ = [
    "SEARCH_ATTRIBUTES",
    "DevServer",
    "DevServerError",
    "PortTaken",
    "StateDirLock",
    "StateDirLocked",
    "ensure_port_free",
    "ensure_search_attributes",
    "free_port",
    "temporal_binary",
]
