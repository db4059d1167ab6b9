"""Frames from a camera: an OpenCV device index, an RTSP/HTTP URL, or a folder of image files
(the simulator). Frames are RGB uint8 arrays, kept in memory only, never written or logged.

``open_source(spec)`` picks the kind from the spec; ``Camera`` reads in a dedicated thread
(OpenCV's reads block) and hands the newest frame to the event loop, dropping stale ones: a
turnstile wants the face in front of it now, not a queue of old ones.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Protocol

import cv2
import numpy as np

from edge.faces.encoder import Image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff"})


class CameraError(Exception):
    """The camera cannot be opened or stopped delivering frames."""


class FrameSource(Protocol):
    """A blocking source of RGB frames. ``read`` returns None at the end of a finite source."""

    def read(self) -> Image | None: ...

    def close(self) -> None: ...


class OpenCVSource:
    """A V4L2 device index or a stream URL (rtsp://, http://) through cv2.VideoCapture."""

    def __init__(self, spec: int | str) -> None:
        self._spec = spec
        self._cap = cv2.VideoCapture(spec)
        if not self._cap.isOpened():
            self._cap.release()
            raise CameraError(f"cannot open camera {_redact(spec)}")

    def read(self) -> Image | None:
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            raise CameraError(f"camera {_redact(self._spec)} delivered no frame")
        return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))

    def close(self) -> None:
        self._cap.release()


class FolderSource:
    """Image files of a folder in name order, once or in a loop, at an optional frame rate."""

    def __init__(self, folder: Path, *, loop: bool = False, fps: float | None = None) -> None:
        self.files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise CameraError(f"{folder}: no image files")
        self._loop = loop
        self._period = 1.0 / fps if fps else 0.0
        self._next = self._frames()
        self._due = time.monotonic()

    def _frames(self) -> Iterator[Path]:
        while True:
            yield from self.files
            if not self._loop:
                return

    def read(self) -> Image | None:
        path = next(self._next, None)
        if path is None:
            return None
        if self._period:
            self._due += self._period
            time.sleep(max(0.0, self._due - time.monotonic()))
        return read_image(path)

    def close(self) -> None:
        pass


def read_image(path: Path) -> Image:
    """An image file as an RGB uint8 array (CameraError if unreadable)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise CameraError(f"{path.name}: not a readable image")
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def open_source(
    spec: str | int | Path, *, loop: bool = False, fps: float | None = None
) -> FrameSource:
    """``0`` / ``"0"`` -> device, ``"rtsp://..."`` -> stream, a directory -> folder simulator."""
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        return OpenCVSource(int(spec))
    if isinstance(spec, str) and "://" in spec:
        return OpenCVSource(spec)
    folder = Path(spec)
    if folder.is_dir():
        return FolderSource(folder, loop=loop, fps=fps)
    raise CameraError(f"{spec!s}: not a device index, a stream URL or a folder of frames")


def _redact(spec: int | str) -> str:
    # A stream URL can carry the camera's password: never log it.
    if isinstance(spec, str) and "@" in spec and "://" in spec:
        scheme, rest = spec.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return str(spec)


class Camera:
    """Reads a FrameSource in its own thread; ``await camera.frame()`` gives the newest frame.

    At the end of a finite source ``frame()`` returns None; a failing source raises CameraError.
    """

    def __init__(self, source: FrameSource, *, read_timeout: float = 5.0) -> None:
        self._source = source
        self._read_timeout = read_timeout
        self._ready = asyncio.Event()
        self._latest: Image | None = None
        self._seq = 0
        self._taken = 0
        self._done = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> Camera:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._reader, name="camera", daemon=True)
        self._thread.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, self._read_timeout)
        await asyncio.to_thread(self._source.close)

    def _reader(self) -> None:
        assert self._loop is not None
        while not self._stop.is_set():
            try:
                frame = self._source.read()
            except BaseException as err:  # handed to the loop, raised to the awaiting task
                self._loop.call_soon_threadsafe(self._publish, None, err)
                return
            self._loop.call_soon_threadsafe(self._publish, frame, None)
            if frame is None:
                return

    def _publish(self, frame: Image | None, err: BaseException | None) -> None:
        if err is not None:
            self._error = err
        elif frame is None:
            self._done = True
        else:
            self._latest = frame
            self._seq += 1
        self._ready.set()

    async def frame(self) -> Image | None:
        """The newest frame not yet taken (waits for one); None when a finite source ended."""
        while not (self._seq > self._taken or self._done or self._error is not None):
            self._ready.clear()
            async with asyncio.timeout(self._read_timeout):
                await self._ready.wait()
        if self._seq > self._taken:
            self._taken = self._seq
            return self._latest
        if self._error is not None:
            raise CameraError("the camera stopped delivering frames") from self._error
        return None
