"""Enrolment of a student's face at the school, by a staff member, only with biometric consent.

The consent is checked twice: before the image is even looked at (from the edge store's memory),
and again atomically when the template is written (``FaceTemplateStore.add``), so a withdrawal
arriving during the encoding wins. The image is read, encoded and dropped: it is never stored,
logged or sent. (Keeping the photo would need a policy switch that does not exist; by default
nothing but the encrypted template remains.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge.faces.camera import read_image
from edge.faces.encoder import Box, FaceEncoder
from edge.faces.store import FaceTemplateStore, NoBiometricConsent
from protocol.messages import ConsentKind

log = logging.getLogger(__name__)

MAX_TEMPLATES_PER_STUDENT = 5


class _Student(Protocol):
    @property
    def consents(self) -> frozenset[ConsentKind]: ...


class _Students(Protocol):
    def student(self, student_id: str) -> _Student | None: ...


class ConsentsView(Protocol):
    """What enrolment reads: ``EdgeStore`` satisfies it (``store.state.student(id).consents``)."""

    @property
    def state(self) -> _Students: ...


class EnrolmentRefused(Exception):
    """Enrolment did not happen; ``reason`` is a stable code for the staff screen."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Enrolment:
    student_id: str
    template_id: int
    templates_now: int
    box: Box  # where the face was, for the staff screen's feedback


def has_biometric_consent(view: ConsentsView, student_id: str) -> bool:
    s = view.state.student(student_id)
    return s is not None and ConsentKind.BIOMETRIC in s.consents


async def enrol_student(
    consents: ConsentsView,
    templates: FaceTemplateStore,
    encoder: FaceEncoder,
    student_id: str,
    image: npt.ArrayLike | Path,
    *,
    source: str = "camera",
    now_ms: int | None = None,
) -> Enrolment:
    """Encode the one face in ``image`` (an RGB array from the camera, or an image file) and
    store it encrypted for ``student_id``. EnrolmentRefused without consent, without exactly one
    face, or when the student already has the maximum number of templates."""
    if not has_biometric_consent(consents, student_id):
        raise EnrolmentRefused("no_consent", "no granted biometric consent is recorded")
    existing = (await templates.enrolled_students()).get(student_id, 0)
    if existing >= MAX_TEMPLATES_PER_STUDENT:
        raise EnrolmentRefused(
            "too_many_templates", f"already {existing} templates: delete some before adding"
        )
    if isinstance(image, Path):
        pixels = await asyncio.to_thread(read_image, image)
        source = "file"
    else:
        pixels = np.asarray(image)
    faces = await encoder.encode(pixels)
    del pixels  # the image goes no further than this function
    if len(faces) != 1:
        raise EnrolmentRefused(
            "no_face" if not faces else "several_faces",
            f"an enrolment image must show exactly one face, found {len(faces)}",
        )
    at_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    try:
        template_id = await templates.add(
            student_id, faces[0].encoding, now_ms=at_ms, source=source
        )
    except NoBiometricConsent as err:  # withdrawn while the face was being encoded
        raise EnrolmentRefused("no_consent", "biometric consent was withdrawn") from err
    log.info("face template enrolled (%d now for this student)", existing + 1)
    return Enrolment(student_id, template_id, existing + 1, faces[0].box)
