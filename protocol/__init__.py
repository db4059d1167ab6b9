"""The wire protocol shared by the edge and the server. No I/O in this package."""

from protocol.codec import SCHEMA_VERSION, decode, encode, open_envelope
from protocol.errors import ProtocolError

__all__ = ["SCHEMA_VERSION", "ProtocolError", "decode", "encode", "open_envelope"]
