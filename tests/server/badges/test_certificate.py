"""The certificate PDF: its QR code, read back out of the PDF and decoded by OpenCV, is the
verification URL; the fonts carry Kazakh letters; bad input is refused."""

from __future__ import annotations

import io
import re
import struct
import zlib
from datetime import date

import numpy as np
import pytest
from PIL import Image

from server.badges.certificate import (
    CertificateError,
    CertificateText,
    certificate_pdf,
    qr_image,
    qr_png,
)

try:  # OpenCV (the "faces" extra) decodes QR codes; without it only the pixels are compared
    import cv2
except ImportError:  # pragma: no cover - the faces extra is installed in CI
    cv2 = None

URL = "https://badges.example.kz/badges/verify/5f0c6a52-9f3e-4c1e-9a55-0d7a1c2e8b11"
TEXTS = [
    CertificateText("kk", "Сертификат", ("«Елбасы медалі» алтын деңгейі берілді",)),
    CertificateText("ru", "Сертификат", ("награждается «Медалью Елбасы», золотой уровень",)),
    CertificateText("en", "Certificate", ('is awarded the "Elbasy Medal", gold level',)),
]


def make(**kw) -> bytes:
    args = {
        "recipient": "Айгүл Нұрланқызы",
        "level": "gold",
        "texts": TEXTS,
        "verify_url": URL,
        "issued_on": date(2026, 11, 30),
        "verify_caption": "Тексеру / Проверка / Verify",
        "footer": "urn:uuid:5f0c6a52-9f3e-4c1e-9a55-0d7a1c2e8b11",
    }
    args.update(kw)
    return certificate_pdf(**args)


def decode_qr(img: Image.Image) -> str:
    if cv2 is None:
        pytest.skip("OpenCV is not installed (pip install .[faces])")
    pixels = np.array(img.convert("L"))
    text, _, _ = cv2.QRCodeDetector().detectAndDecode(pixels)
    return str(text)


def images_in(pdf: bytes) -> list[Image.Image]:
    """Every greyscale image XObject of the PDF, rebuilt as a PNG (fpdf2 stores PNG-predicted
    Flate data, which is exactly a PNG's IDAT)."""
    found = []
    for m in re.finditer(rb"<<\n((?:/[^\n]*\n)*?/Subtype /Image\n(?:/[^\n]*\n)*)>>\nstream\n", pdf):
        head = m.group(1).decode("latin-1")
        if "/DeviceGray" not in head or "/Predictor 15" not in head:
            continue
        width = int(re.search(r"/Width (\d+)", head).group(1))
        height = int(re.search(r"/Height (\d+)", head).group(1))
        length = int(re.search(r"/Length (\d+)", head).group(1))
        data = pdf[m.end() : m.end() + length]

        def chunk(kind: bytes, body: bytes) -> bytes:
            return (
                struct.pack(">I", len(body))
                + kind
                + body
                + struct.pack(">I", zlib.crc32(kind + body))
            )

        png = (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", data)
            + chunk(b"IEND", b"")
        )
        found.append(Image.open(io.BytesIO(png)))
    return found


def test_the_qr_code_in_the_pdf_is_the_verification_url():
    pdf = make()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert pdf.count(b"/Type /Page\n") == 1
    images = images_in(pdf)
    assert len(images) == 1
    # the very pixels of the URL's QR code (segno's matrix is deterministic) ...
    assert np.array_equal(np.array(images[0]), np.array(qr_image(URL)))
    assert not np.array_equal(np.array(images[0]), np.array(qr_image(URL + "x")))
    # ... and a QR reader reads the URL back
    assert decode_qr(images[0]) == URL


def test_qr_png_decodes():
    img = Image.open(io.BytesIO(qr_png(URL)))
    assert img.format == "PNG"
    assert decode_qr(img) == URL


def test_fonts_and_metadata():
    pdf = make()
    assert b"DejaVu" in pdf  # the Unicode font is embedded: Kazakh letters have glyphs
    # the title in the metadata (UTF-16 with a byte order mark, as fpdf2 writes non-Latin text)
    title = "Сертификат: Айгүл Нұрланқызы".encode("utf-16-be").hex()
    assert f"/Title <feff{title}>".encode() in pdf


def test_the_same_input_gives_the_same_bytes_and_levels_differ():
    assert make() == make()
    assert make(level="bronze") != make(level="gold")
    assert make(recipient="Бекзат") != make()


@pytest.mark.parametrize(
    "bad",
    [
        {"verify_url": ""},
        {"verify_url": "javascript:alert(1)"},
        {"verify_url": "https://x.kz/" + "a" * 600},
        {"recipient": "  "},
        {"recipient": "x" * 301},
        {"texts": []},
        {"texts": TEXTS * 2},
        {"texts": [CertificateText("kk", "T", tuple("x" for _ in range(13)))]},
        {"texts": [CertificateText("kk", "x" * 301)]},
        {"level": "platinum"},
        {"footer": "x" * 301},
    ],
)
def test_bad_input_is_refused(bad):
    with pytest.raises(CertificateError):
        make(**bad)
