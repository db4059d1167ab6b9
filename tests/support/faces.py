"""The face tests' roster and images: two students (one with biometric consent), the
astronaut's face crop, unit encodings."""

from __future__ import annotations

import numpy as np

from protocol.messages import ConsentKind, ConsentRecord, StudentRecord, SyncSnapshot

CONSENTED = "st-bio"  # data + biometric consent


CARD_ONLY = "st-card"  # data consent only: parents refused biometrics


def consent(kind: ConsentKind, granted: bool = True) -> ConsentRecord:
    return ConsentRecord(kind=kind, granted=granted, given_by="parent", at_ms=1, document="doc-1")


def student(sid: str, *kinds: ConsentKind) -> StudentRecord:
    return StudentRecord(
        id=sid, grade=3, class_name="3A", shift=1, consents=[consent(k) for k in kinds]
    )


def roster(version: int = 1, extra: list[StudentRecord] | None = None) -> SyncSnapshot:
    return SyncSnapshot(
        school="S1",
        version=version,
        policy=None,
        students=[
            student(CONSENTED, ConsentKind.DATA, ConsentKind.BIOMETRIC),
            student(CARD_ONLY, ConsentKind.DATA),
            *(extra or []),
        ],
        staff=[],
        cards=[],
    )


def face_crop(img: np.ndarray) -> np.ndarray:
    """The astronaut's head and shoulders (the full picture also shows a badge that a HOG
    detector upsampled once takes for a second face)."""
    return np.ascontiguousarray(img[0:300, 90:350])


def unit_encoding(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128)
    return v / np.linalg.norm(v)
