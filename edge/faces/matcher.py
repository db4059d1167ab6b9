"""Face matching: pure functions over a gallery of encodings (no I/O, no clock, no logging).

Distances are Euclidean between 128-d dlib encodings, as face_recognition computes them. A
student may have several templates; a student's distance is the smallest of theirs.

Rules, the same for identification (face only) and verification (card + face):
- a candidate matches only at a distance <= ``tolerance``;
- when another student is within ``margin`` of the best student's distance (or closer), the
  decision is "ambiguous" and there is no match: the camera does not choose between two children
  (siblings, twins, or a model that confuses children: it was trained on adults).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge.faces.crypto import ENCODING_DIM, Encoding, as_encoding

DEFAULT_TOLERANCE = 0.5  # face_recognition's own default is 0.6; stricter for children
DEFAULT_MARGIN = 0.06


class MatchReason(enum.StrEnum):
    MATCH = "match"
    NO_TEMPLATES = "no_templates"  # nobody (or not the claimed student) is enrolled
    ABOVE_TOLERANCE = "above_tolerance"
    AMBIGUOUS = "ambiguous"


class TerminalFaceMode(enum.StrEnum):
    """How a terminal identifies people."""

    CARD_ONLY = "card_only"
    CARD_AND_FACE = "card_and_face"  # the face is a second factor against card sharing
    FACE_ONLY = "face_only"


@dataclass(frozen=True, slots=True)
class MatchParams:
    tolerance: float = DEFAULT_TOLERANCE
    margin: float = DEFAULT_MARGIN

    def __post_init__(self) -> None:
        if not 0.0 < self.tolerance < 2.0:
            raise ValueError(f"tolerance {self.tolerance} is outside (0, 2)")
        if not 0.0 <= self.margin < 1.0:
            raise ValueError(f"margin {self.margin} is outside [0, 1)")


@dataclass(frozen=True, slots=True)
class MatchResult:
    """``student_id`` is set only when ``reason`` is MATCH. Distances are for audit/benchmarks,
    never for the wire: they derive from biometric data."""

    student_id: str | None
    reason: MatchReason
    distance: float | None = None  # the best (or claimed) student's distance
    runner_up: float | None = None  # the nearest other student's distance

    @property
    def matched(self) -> bool:
        return self.reason is MatchReason.MATCH


@dataclass(frozen=True, eq=False)
class Gallery:
    """The school's templates in memory: one row per template, with its student.

    Squared norms are precomputed so a 1:N match is one matrix-vector product.
    """

    student_ids: tuple[str, ...]
    matrix: npt.NDArray[np.float64] = field(repr=False)  # (N, 128): never in a log line
    _codes: npt.NDArray[np.int64] = field(repr=False)
    _students: tuple[str, ...] = field(repr=False)
    _sq_norms: npt.NDArray[np.float64] = field(repr=False)
    _index: dict[str, int] = field(repr=False)

    @classmethod
    def build(cls, rows: Sequence[tuple[str, npt.ArrayLike]]) -> Gallery:
        students: dict[str, int] = {}
        codes = np.fromiter(
            (students.setdefault(sid, len(students)) for sid, _ in rows), dtype=np.int64
        )
        if rows:
            matrix = np.stack([as_encoding(enc) for _, enc in rows])
        else:
            matrix = np.empty((0, ENCODING_DIM), dtype=np.float64)
        return cls(
            student_ids=tuple(sid for sid, _ in rows),
            matrix=matrix,
            _codes=codes,
            _students=tuple(students),
            _sq_norms=np.einsum("ij,ij->i", matrix, matrix),
            _index=students,
        )

    def __len__(self) -> int:
        return len(self.student_ids)

    @property
    def students(self) -> frozenset[str]:
        return frozenset(self._students)

    def without(self, student_ids: frozenset[str] | set[str]) -> Gallery:
        """The gallery minus every template of these students (after a consent withdrawal)."""
        return Gallery.build(
            [
                (sid, self.matrix[i])
                for i, sid in enumerate(self.student_ids)
                if sid not in student_ids
            ]
        )

    def distances(self, probe: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Distance from ``probe`` to every template, in row order."""
        p = as_encoding(probe)
        # einsum, not BLAS: a multithreaded BLAS call this small stalls for ms on a busy CPU
        dots: npt.NDArray[np.float64] = np.einsum("ij,j->i", self.matrix, p)
        sq = self._sq_norms - 2.0 * dots + float(p @ p)
        return np.sqrt(np.maximum(sq, 0.0))

    def per_student(self, probe: npt.ArrayLike) -> dict[str, float]:
        """Each enrolled student's smallest distance to ``probe`` (tests and audits)."""
        best = np.full(len(self._students), np.inf)
        np.minimum.at(best, self._codes, self.distances(probe))
        return {sid: float(best[i]) for i, sid in enumerate(self._students)}


def identify(gallery: Gallery, probe: Encoding, params: MatchParams) -> MatchResult:
    """1:N: the one enrolled student this face is, or None with the reason."""
    if len(gallery) == 0:
        return MatchResult(None, MatchReason.NO_TEMPLATES)
    d = gallery.distances(probe)
    i = int(np.argmin(d))
    best = float(d[i])
    others = d[gallery._codes != gallery._codes[i]]
    runner_up = float(others.min()) if others.size else None
    if best > params.tolerance:
        return MatchResult(None, MatchReason.ABOVE_TOLERANCE, best, runner_up)
    if runner_up is not None and runner_up - best <= params.margin:
        return MatchResult(None, MatchReason.AMBIGUOUS, best, runner_up)
    return MatchResult(gallery.student_ids[i], MatchReason.MATCH, best, runner_up)


def verify(gallery: Gallery, claimed: str, probe: Encoding, params: MatchParams) -> MatchResult:
    """1:1 with a 1:N guard: is this face the card owner's?

    Fails when the owner has no template, is farther than ``tolerance``, or another enrolled
    student is as close as the owner or within ``margin`` (a look-alike sibling using the card).
    """
    if len(gallery) == 0:
        return MatchResult(None, MatchReason.NO_TEMPLATES)
    code = gallery._index.get(claimed)
    if code is None:
        return MatchResult(None, MatchReason.NO_TEMPLATES)
    d = gallery.distances(probe)
    own = gallery._codes == code
    best = float(d[own].min())
    others = d[~own]
    runner_up = float(others.min()) if others.size else None
    if best > params.tolerance:
        return MatchResult(None, MatchReason.ABOVE_TOLERANCE, best, runner_up)
    if runner_up is not None and runner_up - best <= params.margin:
        return MatchResult(None, MatchReason.AMBIGUOUS, best, runner_up)
    return MatchResult(claimed, MatchReason.MATCH, best, runner_up)
