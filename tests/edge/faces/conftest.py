"""Fixtures of the face tests: a real edge store per test (own temporary directory), a private
template key, and the one lawful face used throughout: ``skimage.data.astronaut()`` (NASA,
public domain)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from skimage import data

from edge.faces.crypto import TemplateCipher
from edge.faces.store import FaceTemplateStore
from edge.store import EdgeStore
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


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "edge.sqlite"


@pytest.fixture
async def edge_store(db_path: Path) -> AsyncIterator[EdgeStore]:
    store = await EdgeStore.open(db_path, school="S1", device="d1")
    await store.apply_snapshot(roster())
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def cipher(tmp_path: Path) -> TemplateCipher:
    return TemplateCipher.from_key_file(tmp_path / "face.key")


@pytest.fixture
async def templates(
    edge_store: EdgeStore, db_path: Path, cipher: TemplateCipher
) -> AsyncIterator[FaceTemplateStore]:
    store = await FaceTemplateStore.open(db_path, cipher)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut())


def face_crop(img: np.ndarray) -> np.ndarray:
    """The astronaut's head and shoulders (the full picture also shows a badge that a HOG
    detector upsampled once takes for a second face)."""
    return np.ascontiguousarray(img[0:300, 90:350])


def unit_encoding(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128)
    return v / np.linalg.norm(v)
