"""The daemon's face side: one encoder worker, the encrypted template table, the in-memory
gallery and the consent-withdrawal watcher, opened together for the whole daemon.

``async with FaceService.open(store, store_path, key_file) as faces:`` then ``faces.identify(encoding)``,
``faces.verify(student, encoding)``, ``await faces.enrol(student, image)``. A withdrawal (or a
student's removal) arriving through the downlink deletes the templates, journals one
``FaceTemplatesDeletedEvent`` per student (a count and a reason: nothing biometric) in the same
journal as every tap, and rebuilds the gallery.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import numpy.typing as npt

from edge.faces.crypto import Encoding, FaceKeyError, TemplateCipher
from edge.faces.encoder import FaceEncoder
from edge.faces.enrol import Enrolment, enrol_student
from edge.faces.matcher import Gallery, MatchParams, MatchResult, identify, verify
from edge.faces.store import FaceTemplateStore
from edge.faces.withdrawal import TemplateDeletion, WithdrawalWatcher
from edge.store import EdgeStore, JournalEntry
from protocol.messages import FaceTemplatesDeletedEvent

log = logging.getLogger(__name__)

DELETION_TERMINAL = "faces"  # the journal's "terminal" of a deletion: the face component
GALLERY_REFRESH_S = 30.0  # picks up templates enrolled by another process


class FaceSetupError(Exception):
    """The face side cannot start (key file, store)."""


class FaceService:
    def __init__(
        self,
        store: EdgeStore,
        templates: FaceTemplateStore,
        encoder: FaceEncoder,
        *,
        sweep_every: float = 30.0,
    ) -> None:
        self.store = store
        self.templates = templates
        self.encoder = encoder
        self.gallery = Gallery.build([])
        self.deletions_journaled = 0
        self.watcher = WithdrawalWatcher(
            store, templates, self._on_deleted, sweep_every=sweep_every
        )

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        store: EdgeStore,
        store_path: Path,
        key_file: Path,
        *,
        encoder: FaceEncoder | None = None,
        sweep_every: float = 30.0,
    ) -> AsyncIterator[FaceService]:
        try:
            cipher = await asyncio.to_thread(TemplateCipher.from_key_file, key_file)
        except (FaceKeyError, OSError) as err:
            raise FaceSetupError(str(err)) from err
        async with contextlib.AsyncExitStack() as stack:
            templates = await FaceTemplateStore.open(store_path, cipher)
            stack.push_async_callback(templates.close)
            if encoder is None:
                encoder = await stack.enter_async_context(FaceEncoder())
            enc: FaceEncoder = encoder
            service = cls(store, templates, enc, sweep_every=sweep_every)
            await service.refresh_gallery()
            await stack.enter_async_context(service.watcher)
            store.add_change_listener(service.watcher.on_store_change)
            refresher = asyncio.create_task(service._refresh_loop(), name="face-gallery-refresh")
            stack.push_async_callback(_cancel, refresher)
            yield service

    async def refresh_gallery(self) -> None:
        self.gallery = await self.templates.gallery()

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(GALLERY_REFRESH_S)
            try:
                await self.refresh_gallery()
            except Exception:
                log.exception("face gallery refresh failed; keeping the previous one")

    async def _on_deleted(self, deleted: list[TemplateDeletion]) -> None:
        """Journal the deletions (raises on failure: the watcher keeps them and retries)."""
        self.gallery = self.gallery.without({d.student_id for d in deleted})
        at_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        entries = [
            JournalEntry(
                FaceTemplatesDeletedEvent(
                    seq=1,
                    at_ms=at_ms,
                    terminal=DELETION_TERMINAL,
                    student_id=d.student_id,
                    templates=d.templates,
                    reason=d.reason.value,
                )
            )
            for d in deleted
        ]
        async with self.store.write_lock:
            await self.store.journal(entries)
        self.deletions_journaled += len(entries)
        log.info("journaled the deletion of face templates of %d students", len(entries))
        await self.refresh_gallery()

    def identify(self, probe: Encoding, params: MatchParams) -> MatchResult:
        return identify(self.gallery, probe, params)

    def verify(self, student_id: str, probe: Encoding, params: MatchParams) -> MatchResult:
        return verify(self.gallery, student_id, probe, params)

    def is_enrolled(self, student_id: str) -> bool:
        return student_id in self.gallery.students

    async def enrol(
        self, student_id: str, image: npt.ArrayLike | Path, *, source: str = "camera"
    ) -> Enrolment:
        """Enrol one face (EnrolmentRefused without biometric consent) and refresh the gallery."""
        done = await enrol_student(
            self.store, self.templates, self.encoder, student_id, image, source=source
        )
        await self.refresh_gallery()
        return done


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
