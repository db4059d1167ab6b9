"""The one exception the protocol package raises."""

from __future__ import annotations


class ProtocolError(ValueError):
    """Bytes or a message that do not follow the wire protocol.

    ``context`` names what was being decoded (a topic, a message type, a field) so that the caller
    can log and count the rejection without knowing the codec's internals.
    """

    def __init__(self, message: str, *, context: str = "") -> None:
        self.context = context
        super().__init__(f"{context}: {message}" if context else message)
