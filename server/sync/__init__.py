"""Server downlink: versioned change log per school, deltas, snapshots, device status."""

from server.sync.changelog import append_changes, load_state
from server.sync.service import DownlinkService
from server.sync.state import ChangeRejected, SchoolState, fold

__all__ = [
    "ChangeRejected",
    "DownlinkService",
    "SchoolState",
    "append_changes",
    "fold",
    "load_state",
]
