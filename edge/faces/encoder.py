"""Face detection (HOG) and encoding with face_recognition, off the event loop.

dlib holds the GIL while it detects and encodes (measured here: 150 ms stalls of a thread that
only sleeps 1 ms), so a worker *thread* would still freeze the event loop. The work runs in one
dedicated worker *process* (spawned, models loaded once at start); the loop only awaits it. The
frame crosses the pipe as bytes and the result comes back as boxes and encodings: nothing is
written to disk and nothing is logged.

``detect_and_encode`` is the plain synchronous function the worker runs; the benchmark calls it
directly as the bare face_recognition baseline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import resource
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.faces.crypto import Encoding

log = logging.getLogger(__name__)

Image = npt.NDArray[np.uint8]  # (H, W, 3) RGB
Box = tuple[int, int, int, int]  # top, right, bottom, left (face_recognition's order)


class EncoderError(Exception):
    """The encoder cannot run (models missing, worker died, timeout)."""


class EnrolmentImageError(ValueError):
    """An enrolment image must show exactly one face."""

    def __init__(self, faces: int) -> None:
        what = "no face" if faces == 0 else f"{faces} faces"
        super().__init__(f"an enrolment image must show exactly one face, found {what}")
        self.faces = faces


@dataclass(frozen=True, slots=True)
class DetectorParams:
    upsample: int = (
        0  # 0 finds faces >= ~80 px, about 4x faster than 1 (face_recognition's default)
    )
    jitters: int = 1  # re-samplings per encoding; more is slower and slightly steadier
    model: str = "hog"


@dataclass(frozen=True, slots=True)
class FaceObservation:
    box: Box
    encoding: Encoding


def as_image(image: npt.ArrayLike) -> Image:
    """A C-contiguous (H, W, 3) uint8 RGB array, as dlib requires (slices are not contiguous)."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"an image has shape (H, W, 3), not {arr.shape}")
    if arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and float(arr.max()) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def detect_and_encode(image: npt.ArrayLike, params: DetectorParams) -> list[FaceObservation]:
    """Every face in the image with its 128-d encoding (synchronous, holds the GIL: use off-loop)."""
    import face_recognition  # the models load on first import (about 1.5 s, ~150 MB)

    img = as_image(image)
    boxes = face_recognition.face_locations(
        img, number_of_times_to_upsample=params.upsample, model=params.model
    )
    if not boxes:
        return []
    encs = face_recognition.face_encodings(
        img, known_face_locations=boxes, num_jitters=params.jitters
    )
    return [
        FaceObservation(tuple(int(v) for v in b), np.asarray(e, dtype=np.float64))  # type: ignore[arg-type]
        for b, e in zip(boxes, encs, strict=True)
    ]


def _worker_init() -> None:
    import face_recognition  # noqa: F401  (load the models once, before the first frame)


def _worker_run(
    buf: bytes, shape: tuple[int, int, int], params: DetectorParams
) -> list[tuple[Box, bytes]]:
    img = np.frombuffer(buf, dtype=np.uint8).reshape(shape)
    return [(o.box, o.encoding.tobytes()) for o in detect_and_encode(img, params)]


def peak_rss_kb() -> int:
    """This process's peak resident memory in KiB. Linux's VmHWM belongs to the address space,
    so a spawned worker does not inherit its parent's peak (getrusage's ru_maxrss survives exec
    and reported the parent's figure for the worker)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _worker_peak_rss_kb() -> int:
    return peak_rss_kb()


class FaceEncoder:
    """Async face detection + encoding in one dedicated worker process.

    ``async with FaceEncoder() as enc: faces = await enc.encode(frame)``. One frame at a time
    (the worker is single); a frame that takes longer than ``timeout`` raises EncoderError.
    """

    def __init__(self, params: DetectorParams | None = None, *, timeout: float = 10.0) -> None:
        self.params = params or DetectorParams()
        self.timeout = timeout
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    async def __aenter__(self) -> FaceEncoder:
        ctx = multiprocessing.get_context("spawn")  # no fork of a threaded daemon
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=1, mp_context=ctx, initializer=_worker_init
        )
        try:
            # Start the worker and load the models now, not on the first child at the gate.
            await self._call(_worker_peak_rss_kb, limit_s=60.0)
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    async def _call(self, fn: Any, *args: Any, limit_s: float | None = None) -> Any:
        if self._pool is None:
            raise EncoderError("the face encoder is not started")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(limit_s or self.timeout):
                return await loop.run_in_executor(self._pool, fn, *args)
        except TimeoutError as err:
            raise EncoderError(
                f"face encoding took longer than {limit_s or self.timeout} s"
            ) from err
        except concurrent.futures.BrokenExecutor as err:
            raise EncoderError("the face encoder worker died") from err

    async def encode(self, image: npt.ArrayLike) -> list[FaceObservation]:
        """Every face in ``image`` (RGB) with its encoding."""
        img = as_image(image)
        h, w, c = img.shape
        got: list[tuple[Box, bytes]] = await self._call(
            _worker_run, img.tobytes(), (h, w, c), self.params
        )
        return [
            FaceObservation(box, np.frombuffer(enc, dtype=np.float64).copy()) for box, enc in got
        ]

    async def encode_one(self, image: npt.ArrayLike) -> FaceObservation:
        """The single face of an enrolment image; EnrolmentImageError unless exactly one."""
        faces = await self.encode(image)
        if len(faces) != 1:
            raise EnrolmentImageError(len(faces))
        return faces[0]

    async def worker_peak_rss_kb(self) -> int:
        """Peak resident memory of the worker process (models loaded), in KiB."""
        return int(await self._call(_worker_peak_rss_kb))
