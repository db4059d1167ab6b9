"""Card + face at the daemon: the face after a card read is checked against the card's student."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from edge.config import TerminalConfig
from edge.daemon import verify_card_face
from edge.faces.camera import Camera, open_source
from edge.faces.service import FaceService
from edge.store import EdgeStore
from protocol.messages import CardBinding, OwnerKind
from tests.support.faces import CARD_ONLY, CONSENTED, face_crop, roster


def frames(tmp_path: Path, name: str, *images: np.ndarray) -> str:
    d = tmp_path / name
    d.mkdir()
    for i, im in enumerate(images):
        cv2.imwrite(str(d / f"{i:02d}.png"), cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
    return str(d)


@pytest.fixture
async def faces(
    edge_store: EdgeStore, db_path: Path, tmp_path: Path, astronaut: np.ndarray
) -> AsyncIterator[FaceService]:
    cards = [
        CardBinding(credential=f"EM:{i}", owner_kind=OwnerKind.STUDENT, owner_id=sid)
        for i, sid in ((1, CONSENTED), (2, CARD_ONLY))
    ]
    await edge_store.apply_snapshot(roster(2).model_copy(update={"cards": cards}))
    async with FaceService.open(edge_store, db_path, tmp_path / "face.key") as service:
        await service.enrol(CONSENTED, face_crop(astronaut))
        yield service


def term(camera: str) -> TerminalConfig:
    return TerminalConfig.model_validate(
        {
            "id": "gate-1",
            "kind": "turnstile",
            "direction": "in",
            "reader": {"type": "line", "path": "/dev/null"},
            "face_mode": "card_and_face",
            "camera": camera,
            "face_window": 5,
        }
    )


@pytest.mark.timeout(120)
async def test_card_and_face(
    edge_store: EdgeStore, faces: FaceService, tmp_path: Path, astronaut: np.ndarray
) -> None:
    own = term(frames(tmp_path, "own", data.coffee(), astronaut))
    other = term(frames(tmp_path, "other", data.coffee(), data.chelsea()))
    async with Camera(open_source(own.camera or "")) as cam:
        assert await verify_card_face(own, edge_store, faces, cam, "EM:1") is True
    async with Camera(open_source(other.camera or "")) as cam:
        assert await verify_card_face(other, edge_store, faces, cam, "EM:1") is False
    async with Camera(open_source(other.camera or "")) as cam:
        # parents refused biometrics, or an unknown card: no face check at all
        assert await verify_card_face(other, edge_store, faces, cam, "EM:2") is None
        assert await verify_card_face(other, edge_store, faces, cam, "EM:9") is None
