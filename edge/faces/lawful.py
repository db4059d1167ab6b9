"""Lawful test faces: the astronaut photograph shipped with scikit-image (NASA, public domain),
transformations of it as a turnstile camera might see it, and synthetic impostor templates.

Used by the tests and ``simulators/bench_face.py``. Synthetic impostors are vectors, not faces:
they test the matcher's mechanics, not how often two real children look alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]


def astronaut() -> Image:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())  # type: ignore[no-untyped-call]


def _u8(x: npt.NDArray[np.floating[Any]] | Image) -> Image:
    return np.ascontiguousarray(np.clip(x, 0, 255).astype(np.uint8))


def _rotate(deg: float) -> Callable[[Image], Image]:
    def f(img: Image) -> Image:
        from skimage.transform import rotate

        return _u8(rotate(img, deg, mode="edge", preserve_range=True))  # type: ignore[no-untyped-call]

    return f


def _jpeg(quality: int) -> Callable[[Image], Image]:
    def f(img: Image) -> Image:
        import cv2

        ok, buf = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        back = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if back is None:
            raise ValueError("JPEG round trip failed")
        return np.ascontiguousarray(back[:, :, ::-1])

    return f


def _noise(sigma: float) -> Callable[[Image], Image]:
    def f(img: Image) -> Image:
        rng = np.random.default_rng(7)
        return _u8(img + rng.normal(0.0, sigma, img.shape))

    return f


def _scale(k: float) -> Callable[[Image], Image]:
    def f(img: Image) -> Image:
        import cv2

        h, w = img.shape[:2]
        return np.ascontiguousarray(
            cv2.resize(img, (int(w * k), int(h * k)), interpolation=cv2.INTER_AREA)
        )

    return f


TRANSFORMS: dict[str, Callable[[Image], Image]] = {
    "original": lambda im: im,
    "flip": lambda im: np.ascontiguousarray(im[:, ::-1]),
    "darker_0.6": lambda im: _u8(im * 0.6),
    "brighter_1.3": lambda im: _u8(im * 1.3),
    "low_contrast": lambda im: _u8(128 + (im.astype(np.float64) - 128) * 0.6),
    "rotate_+5": _rotate(5),
    "rotate_-5": _rotate(-5),
    "rotate_+12": _rotate(12),
    "crop_face": lambda im: np.ascontiguousarray(im[0:300, 90:350]),
    "crop_tight": lambda im: np.ascontiguousarray(im[40:220, 140:310]),
    "scale_0.75": _scale(0.75),
    "scale_1.5": _scale(1.5),
    "noise_s8": _noise(8.0),
    "jpeg_q30": _jpeg(30),
    "blur": lambda im: _blur(im),
}


def _blur(im: Image) -> Image:
    import cv2

    return np.ascontiguousarray(cv2.GaussianBlur(im, (5, 5), 1.5))


def synthetic_templates(
    anchor: npt.NDArray[np.float64], n: int, *, seed: int = 0, near: float = 0.55, far: float = 1.1
) -> npt.NDArray[np.float64]:
    """``n`` synthetic identities around ``anchor``: Gaussian offsets whose norms (the distance
    to the anchor) spread over [near, far], the range of distances between different adults'
    dlib encodings. Not faces: they exercise the matcher, not the model."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(n, anchor.shape[0]))
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    radii = rng.uniform(near, far, size=(n, 1))
    return np.asarray(anchor[None, :] + noise * radii, dtype=np.float64)
