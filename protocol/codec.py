"""The canonical encoding: deterministic CBOR (RFC 8949 section 4.2.1), in a versioned envelope.

Why CBOR, deterministically encoded:
- one byte string per message (shortest integers, definite lengths, map keys sorted bytewise), so a
  signature over the bytes is stable and golden vectors can pin the wire format exactly;
- compact binary (a batch of 500 events is about half its JSON size), and byte strings travel as
  they are (signatures, keys) with no base64;
- a standard with mature libraries in every language (here ``cbor2``), so a ministry system or a
  third-party terminal can speak it without our code.
Our schemas contain no floats and no tags; the decoder refuses tags.

Envelope: a CBOR map ``{"v": 1, "t": <type name>, "b": <body: canonical CBOR bytes>, "s": <sig>}``.
The body is embedded as bytes, so a signature covers exactly the bytes that were sent and no
re-encoding is needed to verify it; ``"s"`` is present only on signed messages (event batches).
"""

from __future__ import annotations

import enum
import io
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import cbor2
from pydantic import ValidationError

from protocol.errors import ProtocolError
from protocol.messages import ALL_MESSAGES, TYPE_NAMES, Message

SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

M = TypeVar("M", bound=Message)


def canonical(obj: Any) -> bytes:
    """Deterministic CBOR of plain data (dict / list / str / int / bytes / bool / None)."""
    return cbor2.dumps(obj, canonical=True)


def canonical_model(msg: Message) -> bytes:
    """``canonical(msg.model_dump(mode="json"))``, byte for byte, about five times faster for
    messages of plain fields (the edge's hot path encodes every tap's event with it).

    A canonical map's keys are sorted by their encoding (RFC 8949 section 4.2.1), which depends
    on the key strings only: each message class's order is worked out once, and a map built in
    that order is encoded as it is (integers are always shortest, lengths definite). A class
    this cannot reproduce exactly (nested messages, aliases, serializers other than the
    omission of new empty fields), or a value other than a string, integer, bool, None, enum or
    list of strings, takes the slow path; ``tests/protocol/test_canonical_model.py`` compares
    both on every event kind.
    """
    plan = _PLANS.get(type(msg))
    if plan is None:
        plan = _PLANS[type(msg)] = _plan(type(msg))
    if plan is not _SLOW:
        out: dict[str, Any] = {}
        values = msg.__dict__
        for key, omit in plan:
            v = values[key]
            if omit is not None and omit(v):
                continue
            t = type(v)
            if t in _PLAIN:
                out[key] = v
            elif t in _ENUMS or _plain_enum(t):
                out[key] = v._value_
            elif t is list and all(type(x) is str for x in v):
                out[key] = v
            else:
                break
        else:
            return cbor2.dumps(out)
    return canonical(msg.model_dump(mode="json"))


_PLAIN: frozenset[type] = frozenset({str, int, bool, type(None)})
_ENUMS: set[type] = set()  # enum classes seen whose values are strings or integers


def _plain_enum(t: type) -> bool:
    if issubclass(t, enum.Enum) and all(type(m.value) in (str, int) for m in t):
        _ENUMS.add(t)
        return True
    return False


_Plan = tuple[tuple[str, Callable[[Any], bool] | None], ...]
_SLOW: _Plan = ()
_PLANS: dict[type[Message], _Plan] = {}


def _omit_empty(v: Any) -> bool:
    return v is None or v == [] or v == ()


def _plan(cls: type[Message]) -> _Plan:
    """The class's fields in canonical key order, each with its omission rule; ``_SLOW`` if the
    class has an encoding this shortcut does not reproduce."""
    decorators = cls.__pydantic_decorators__
    omit_when_empty: tuple[str, ...] = getattr(cls, "omit_when_empty", ())
    serializers = set(decorators.model_serializers)
    if decorators.field_serializers or decorators.computed_fields or serializers - {"_omit_empty"}:
        return _SLOW
    if serializers and not omit_when_empty:
        return _SLOW
    fields = cls.model_fields
    if any(f.alias or f.serialization_alias or f.exclude for f in fields.values()):
        return _SLOW
    order = list(loads_plain(canonical(dict.fromkeys(fields, 0)), context="canonical order"))
    plan: list[tuple[str, Callable[[Any], bool] | None]] = []
    for key in order:
        rule = fields[key].exclude_if
        if key in omit_when_empty:
            if rule is not None:
                return _SLOW
            rule = _omit_empty
        plan.append((key, rule))
    return tuple(plan)


def _refuse_tag(_decoder: Any, tag: Any) -> Any:
    raise ProtocolError(f"CBOR tag {tag.tag} is not allowed", context="cbor")


def _refuse_semantic_tag(*_args: Any) -> Any:
    raise cbor2.CBORDecodeError("CBOR tags are not allowed")


class _EveryTag(Mapping[int, Any]):
    """Overrides cbor2's built-in decoders (bignums, dates, sets, shared references...), which
    would otherwise turn a tag into a value without calling ``tag_hook``."""

    def __getitem__(self, tag: int) -> Any:
        return _refuse_semantic_tag

    def __contains__(self, tag: object) -> bool:
        return True

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0


_EVERY_TAG = _EveryTag()


def loads_plain(buf: bytes, *, context: str) -> Any:
    if len(buf) > MAX_MESSAGE_BYTES:
        raise ProtocolError(
            f"{len(buf)} bytes exceeds the {MAX_MESSAGE_BYTES} limit", context=context
        )
    fp = io.BytesIO(buf)
    try:
        value = cbor2.CBORDecoder(
            fp, tag_hook=_refuse_tag, semantic_decoders=_EVERY_TAG, allow_duplicate_keys=False
        ).decode()
    except ProtocolError:
        raise
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError) as err:
        raise ProtocolError(f"not valid CBOR ({err})", context=context) from err
    if fp.tell() != len(buf):
        raise ProtocolError(
            f"not valid CBOR ({len(buf) - fp.tell()} bytes after the end of the item)",
            context=context,
        )
    return value


def body_bytes(msg: Message) -> bytes:
    return canonical(msg.model_dump(mode="json", by_alias=True, exclude_none=False))


def signed_bytes(type_name: str, body: bytes, version: int = SCHEMA_VERSION) -> bytes:
    """What a signature covers: the protocol name, version, message type and body bytes."""
    return canonical(["qaqpa", version, type_name, body])


def encode(msg: Message, *, signature: bytes | None = None) -> bytes:
    """Envelope bytes for ``msg``; ``signature`` over ``signed_bytes`` of the same body."""
    env: dict[str, Any] = {"v": SCHEMA_VERSION, "t": TYPE_NAMES[type(msg)], "b": body_bytes(msg)}
    if signature is not None:
        env["s"] = signature
    return canonical(env)


class Envelope:
    """A decoded envelope whose body has not been parsed yet (so a signature can be checked first)."""

    __slots__ = ("body", "signature", "type_name", "version")

    def __init__(self, version: int, type_name: str, body: bytes, signature: bytes | None) -> None:
        self.version = version
        self.type_name = type_name
        self.body = body
        self.signature = signature

    def signed_bytes(self) -> bytes:
        return signed_bytes(self.type_name, self.body, self.version)

    def message(self, expected: type[M]) -> M:
        """Parse the body as ``expected``; a different type or an invalid body raises."""
        actual = ALL_MESSAGES.get(self.type_name)
        if actual is not expected:
            raise ProtocolError(
                f"expected {TYPE_NAMES[expected]}, got {self.type_name!r}", context="envelope"
            )
        plain = loads_plain(self.body, context=self.type_name)
        try:
            return expected.model_validate(plain)
        except ValidationError as err:
            raise ProtocolError(_describe(err), context=self.type_name) from err


def open_envelope(buf: bytes) -> Envelope:
    """Check the envelope's shape and version; does not parse or trust the body."""
    env = loads_plain(buf, context="envelope")
    if not isinstance(env, dict):
        raise ProtocolError(f"envelope is a {type(env).__name__}, not a map", context="envelope")
    extra = set(env) - {"v", "t", "b", "s"}
    if extra:
        raise ProtocolError(
            f"unknown envelope field(s) {sorted(extra, key=repr)}", context="envelope"
        )
    version, type_name, body, sig = env.get("v"), env.get("t"), env.get("b"), env.get("s")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ProtocolError("missing or non-integer schema version 'v'", context="envelope")
    if version not in SUPPORTED_VERSIONS:
        raise ProtocolError(
            f"unsupported schema version {version}; this build reads {sorted(SUPPORTED_VERSIONS)}",
            context="envelope",
        )
    if not isinstance(type_name, str) or type_name not in ALL_MESSAGES:
        raise ProtocolError(f"unknown message type {type_name!r}", context="envelope")
    if not isinstance(body, bytes):
        raise ProtocolError("body 'b' must be a byte string", context="envelope")
    if sig is not None and not isinstance(sig, bytes):
        raise ProtocolError("signature 's' must be a byte string", context="envelope")
    return Envelope(version, type_name, body, sig)


def decode(buf: bytes, expected: type[M]) -> M:
    """Decode an unsigned message of type ``expected``."""
    return open_envelope(buf).message(expected)


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:5]:
        loc = ".".join(str(x) for x in e["loc"]) or "(message)"
        parts.append(f"{loc}: {e['msg']}")
    more = err.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
