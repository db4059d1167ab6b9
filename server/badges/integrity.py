"""Integrity checks of journal items: essays compared against all earlier essays of the platform
(MinHash over word shingles, LSH for the candidates; ``datasketch``) and photos (or a video's
key frame) checked for reuse with a perceptual hash (``imagehash``, pHash; Hamming distance).

A suspected copy is flagged to the mentor with the matching item and its similarity -- never
rejected here. Media are not checked for "someone else's face" (that would be biometric
processing without consent); only reuse is detected.

External services named in seed 004 (Antiplagiat for texts, TinEye for images) sit behind the
``ExternalCheck`` protocol; none is implemented (each needs a contract with its provider), and
``external_service`` says so clearly.

Near-pure: no clock, no database; the caller stores each item's ``essay_signature`` /
``media_hash`` and passes the earlier ones back.
"""

from __future__ import annotations

import functools
import io
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import imagehash
import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH
from PIL import Image, UnidentifiedImageError

# Essays
SHINGLE_WORDS = 3
NUM_PERM = 128
# SEED and SCHEME are part of every stored signature's meaning: never change them on a running
# platform (the stored signatures would no longer compare).
SEED = 17
SCHEME = "affine32"
DEFAULT_TEXT_THRESHOLD = 0.5  # estimated Jaccard similarity of the shingle sets
MAX_ESSAY_CHARS = 100_000
SIGNATURE_BYTES = NUM_PERM * 8
# Media
HASH_SIZE = 8  # a 64-bit pHash
DEFAULT_MAX_DISTANCE = 8  # of 64 bits
MAX_IMAGE_BYTES = 20_000_000
MAX_IMAGE_PIXELS = 40_000_000

_WORD = re.compile(r"\w+")


class IntegrityError(ValueError):
    """An item that cannot be checked (too large, not an image, a bad stored signature)."""


class ExternalServiceNotConfigured(IntegrityError):
    """An external check was asked for that has no adapter here (it needs a contract)."""


# --- essays ----------------------------------------------------------------------------------


def words(text: str) -> list[str]:
    """The words of ``text`` after Unicode NFC normalisation and case-folding."""
    if len(text) > MAX_ESSAY_CHARS:
        raise IntegrityError(f"an essay longer than {MAX_ESSAY_CHARS} characters")
    return _WORD.findall(unicodedata.normalize("NFC", text).casefold())


def shingles(text: str, k: int = SHINGLE_WORDS) -> set[str]:
    """Word k-shingles (k consecutive words); a text shorter than k words is one shingle."""
    ws = words(text)
    if not ws:
        return set()
    if len(ws) < k:
        return {" ".join(ws)}
    return {" ".join(ws[i : i + k]) for i in range(len(ws) - k + 1)}


def _minhash(shingle_set: set[str]) -> LeanMinHash:
    m = MinHash(num_perm=NUM_PERM, seed=SEED, scheme=SCHEME)
    m.update_batch([s.encode("utf-8") for s in sorted(shingle_set)])
    return LeanMinHash(m)


def essay_signature(text: str) -> bytes:
    """The MinHash signature of an essay to store beside it (``SIGNATURE_BYTES`` bytes);
    empty bytes for a text without words."""
    sh = shingles(text)
    if not sh:
        return b""
    return np.asarray(_minhash(sh).hashvalues, dtype="<u8").tobytes()


def _from_signature(signature: bytes) -> LeanMinHash:
    if len(signature) != SIGNATURE_BYTES:
        raise IntegrityError(f"a stored essay signature must be {SIGNATURE_BYTES} bytes")
    values = np.frombuffer(signature, dtype="<u8")
    return LeanMinHash(seed=SEED, hashvalues=values.astype(_hash_dtype()), scheme=SCHEME)


@functools.cache
def _hash_dtype() -> np.dtype[Any]:
    """The dtype of the scheme's hash values (a MinHash is costly to make: its permutations)."""
    dtype: np.dtype[Any] = np.dtype(
        MinHash(num_perm=NUM_PERM, seed=SEED, scheme=SCHEME).hashvalues.dtype
    )
    return dtype


@dataclass(frozen=True)
class EssayMatch:
    """An earlier essay (``key``: the caller's id of it) and the estimated Jaccard similarity
    of the two essays' shingle sets (0..1)."""

    key: str
    similarity: float


class EssayIndex:
    """All earlier essays of the platform, by their stored signatures: ``add`` each, then
    ``similar`` for a new essay. LSH gives the candidates; each is then checked against the
    threshold by its MinHash estimate."""

    def __init__(self, threshold: float = DEFAULT_TEXT_THRESHOLD) -> None:
        if not 0.0 < threshold <= 1.0:
            raise IntegrityError("the similarity threshold must be in (0, 1]")
        self.threshold = threshold
        self._lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        self._hashes: dict[str, LeanMinHash] = {}

    def __len__(self) -> int:
        return len(self._hashes)

    def add(self, key: str, signature: bytes) -> None:
        """Index an earlier essay's stored signature (an empty one, a text without words, is
        skipped; a key already indexed is refused)."""
        if not signature:
            return
        if key in self._hashes:
            raise IntegrityError(f"essay {key!r} is already indexed")
        mh = _from_signature(signature)
        self._lsh.insert(key, mh)
        self._hashes[key] = mh

    def add_text(self, key: str, text: str) -> bytes:
        """Index an essay by its text; returns its signature (to store)."""
        signature = essay_signature(text)
        self.add(key, signature)
        return signature

    def similar(self, text: str, exclude: Iterable[str] = ()) -> list[EssayMatch]:
        """Earlier essays whose estimated similarity to ``text`` is at least the threshold,
        most similar first (``exclude``: keys not to report, e.g. the essay itself)."""
        signature = essay_signature(text)
        if not signature:
            return []
        mh = _from_signature(signature)
        skip = set(exclude)
        found = []
        for key in self._lsh.query(mh):
            if key in skip:
                continue
            similarity = float(mh.jaccard(self._hashes[key]))
            if similarity >= self.threshold:
                found.append(EssayMatch(key, round(similarity, 3)))
        return sorted(found, key=lambda m: (-m.similarity, m.key))


def suspected_copies(
    text: str,
    earlier: Iterable[tuple[str, bytes]],
    threshold: float = DEFAULT_TEXT_THRESHOLD,
) -> list[EssayMatch]:
    """The earlier essays (``(key, stored signature)``) that ``text`` looks copied from."""
    index = EssayIndex(threshold)
    for key, signature in earlier:
        index.add(key, signature)
    return index.similar(text)


def jaccard(a: str, b: str) -> float:
    """The exact Jaccard similarity of two texts' shingle sets (for tests and explanations)."""
    sa, sb = shingles(a), shingles(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


# --- media -----------------------------------------------------------------------------------


def _open_image(image: bytes | Image.Image) -> Image.Image:
    if isinstance(image, Image.Image):
        img = image
    else:
        if len(image) > MAX_IMAGE_BYTES:
            raise IntegrityError(f"an image larger than {MAX_IMAGE_BYTES} bytes")
        try:
            img = Image.open(io.BytesIO(image))
        except (UnidentifiedImageError, OSError) as err:
            raise IntegrityError("not an image this check can read") from err
    width, height = img.size
    if width * height > MAX_IMAGE_PIXELS:
        raise IntegrityError(f"an image of more than {MAX_IMAGE_PIXELS} pixels")
    try:
        img.load()
    except (OSError, Image.DecompressionBombError) as err:
        raise IntegrityError("the image cannot be decoded") from err
    return img


def media_hash(image: bytes | Image.Image) -> str:
    """The perceptual hash (pHash, 64 bits) of a photo or of a video's key frame, as 16 hex
    digits to store beside the item."""
    return str(imagehash.phash(_open_image(image), hash_size=HASH_SIZE))


def hamming(a: str, b: str) -> int:
    """The number of differing bits of two stored media hashes."""
    try:
        return int(imagehash.hex_to_hash(a) - imagehash.hex_to_hash(b))
    except (ValueError, TypeError) as err:
        raise IntegrityError("a stored media hash is not 16 hex digits") from err


@dataclass(frozen=True)
class MediaMatch:
    """An earlier item (``key``) whose image is within ``distance`` bits of the new one."""

    key: str
    distance: int


def reused_media(
    new_hash: str,
    earlier: Iterable[tuple[str, str]],
    max_distance: int = DEFAULT_MAX_DISTANCE,
) -> list[MediaMatch]:
    """Earlier items (``(key, stored media hash)``) whose image looks like the new one, the
    closest first. A linear scan: 64-bit hashes of a platform's photos fit in memory."""
    if len(new_hash) != HASH_SIZE * HASH_SIZE // 4:
        raise IntegrityError("a media hash is 16 hex digits")
    found = []
    for key, other in earlier:
        distance = hamming(new_hash, other)
        if distance <= max_distance:
            found.append(MediaMatch(key, distance))
    return sorted(found, key=lambda m: (m.distance, m.key))


# --- external services -----------------------------------------------------------------------


@dataclass(frozen=True)
class ExternalMatch:
    """What an external service found: where (a URL or its own id) and how similar (0..1)."""

    source: str
    similarity: float


class ExternalCheck(Protocol):
    """An external plagiarism (texts) or reverse image search (media) service."""

    name: str

    def check_text(self, text: str) -> Sequence[ExternalMatch]: ...

    def check_image(self, image: bytes) -> Sequence[ExternalMatch]: ...


KNOWN_SERVICES = {
    "antiplagiat": "Antiplagiat (texts)",
    "tineye": "TinEye (images)",
}


def external_service(name: str) -> ExternalCheck:
    """The adapter of an external service. None is implemented: each needs a contract with the
    provider (terms, a data processing agreement for participants' texts and photos, an API key)
    before an adapter is written; until then this raises ``ExternalServiceNotConfigured``."""
    what = KNOWN_SERVICES.get(name.lower())
    if what is None:
        raise ExternalServiceNotConfigured(
            f"unknown external check {name!r} (known: {', '.join(sorted(KNOWN_SERVICES))})"
        )
    raise ExternalServiceNotConfigured(
        f"{what}: no adapter is configured. Using it needs a contract with the provider "
        "(and a data processing agreement for participants' work) before an adapter "
        "implementing ExternalCheck is added; the platform's own checks (MinHash for essays, "
        "perceptual hashes for media) run without it."
    )
