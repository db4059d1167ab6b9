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
from tests.support.faces import roster


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
