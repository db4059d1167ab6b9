"""The medal's certificate: one A4 landscape page (fpdf2, DejaVu Sans like the console's reports,
so Kazakh letters have glyphs) with the recipient, the level, the words in the languages the
caller passes (kk/ru/en from the console's catalogues), and a QR code (segno) of the public
verification URL of the credential.

Pure: no clock (``issued_on`` is passed), no database; the fonts are read from Debian's
``fonts-dejavu-core``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path

import segno
from fpdf import FPDF
from PIL import Image

from server.badges.rules import Level

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
FONT_BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
MAX_URL_CHARS = 500
MAX_LINE_CHARS = 300
MAX_LINES = 12
MAX_LANGUAGES = 3

# Frame colours of the levels (RGB).
LEVEL_COLOUR: dict[Level, tuple[int, int, int]] = {
    Level.BRONZE: (176, 110, 50),
    Level.SILVER: (140, 146, 156),
    Level.GOLD: (200, 160, 30),
}


class CertificateError(ValueError):
    """Input a certificate cannot be made from (the message says which)."""


@dataclass(frozen=True)
class CertificateText:
    """One language's words: a ``title`` (e.g. "Сертификат") and its ``lines`` (e.g. "is
    awarded the Elbasy Medal, gold level"), already translated by the caller."""

    language: str
    title: str
    lines: tuple[str, ...] = ()


def qr_image(url: str, scale: int = 10) -> Image.Image:
    """The QR code of ``url`` (error correction M, quiet zone 4) as a greyscale image."""
    if not url or len(url) > MAX_URL_CHARS:
        raise CertificateError(f"the verification URL must be 1..{MAX_URL_CHARS} characters")
    if not url.startswith(("https://", "http://")):
        raise CertificateError("the verification URL must be an http(s) URL")
    buf = io.BytesIO()
    segno.make(url, error="m", micro=False).save(buf, kind="png", scale=scale, border=4)
    buf.seek(0)
    with Image.open(buf) as img:
        return img.convert("L")


def qr_png(url: str, scale: int = 10) -> bytes:
    """The QR code of ``url`` as PNG bytes (for the verification page)."""
    out = io.BytesIO()
    qr_image(url, scale).save(out, format="PNG")
    return out.getvalue()


def _check_text(recipient: str, texts: Sequence[CertificateText], footer: str) -> None:
    if not recipient.strip() or len(recipient) > MAX_LINE_CHARS:
        raise CertificateError(f"recipient must be 1..{MAX_LINE_CHARS} characters")
    if not 1 <= len(texts) <= MAX_LANGUAGES:
        raise CertificateError(f"give the words in 1..{MAX_LANGUAGES} languages")
    for t in texts:
        if len(t.lines) > MAX_LINES:
            raise CertificateError(f"{t.language}: more than {MAX_LINES} lines")
        for line in (t.title, *t.lines):
            if len(line) > MAX_LINE_CHARS:
                raise CertificateError(f"{t.language}: a line longer than {MAX_LINE_CHARS}")
    if len(footer) > MAX_LINE_CHARS:
        raise CertificateError(f"footer longer than {MAX_LINE_CHARS} characters")


def certificate_pdf(
    *,
    recipient: str,
    level: Level | str,
    texts: Sequence[CertificateText],
    verify_url: str,
    issued_on: date,
    verify_caption: str = "",
    footer: str = "",
) -> bytes:
    """The certificate as PDF bytes.

    ``texts`` holds one block per language (first is the largest); ``verify_caption`` is printed
    under the QR code (e.g. "Тексеру / Проверка / Verify"); ``footer`` e.g. the credential id.
    """
    try:
        level = Level(level)
    except ValueError as err:
        raise CertificateError(f"unknown level {level!r}") from err
    _check_text(recipient, texts, footer)
    if len(verify_caption) > MAX_LINE_CHARS:
        raise CertificateError(f"verify_caption longer than {MAX_LINE_CHARS} characters")
    if not FONT.is_file():
        raise CertificateError(
            f"the certificate needs the DejaVu Sans font at {FONT} (apt-get install fonts-dejavu-core)"
        )
    qr = qr_image(verify_url)

    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_title(f"{texts[0].title}: {recipient}")
    pdf.set_subject(verify_url)
    pdf.set_creator("Qaqpa")
    # no clock: the document is dated by its issue, so the same input gives the same bytes
    pdf.set_creation_date(datetime.combine(issued_on, time(), tzinfo=UTC))
    pdf.add_font("DejaVu", "", str(FONT))
    pdf.add_font("DejaVu", "B", str(FONT_BOLD if FONT_BOLD.is_file() else FONT))
    pdf.set_auto_page_break(False)
    pdf.add_page()

    r, g, b = LEVEL_COLOUR[level]
    pdf.set_draw_color(r, g, b)
    pdf.set_line_width(3)
    pdf.rect(8, 8, 297 - 16, 210 - 16)
    pdf.set_line_width(0.6)
    pdf.rect(13, 13, 297 - 26, 210 - 26)

    text_width = 297 - 2 * 22 - 60  # the QR code takes the right-hand column
    pdf.set_xy(22, 24)
    for i, block in enumerate(texts):
        pdf.set_text_color(r, g, b)
        pdf.set_font("DejaVu", "B", 26 if i == 0 else 15)
        pdf.multi_cell(text_width, 12 if i == 0 else 8, block.title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_x(22)
        pdf.set_text_color(30, 30, 30)
        pdf.set_font("DejaVu", "", 13 if i == 0 else 10)
        for line in block.lines:
            pdf.multi_cell(text_width, 7 if i == 0 else 5.5, line, new_x="LMARGIN", new_y="NEXT")
            pdf.set_x(22)
        if i == 0:
            pdf.ln(3)
            pdf.set_x(22)
            pdf.set_font("DejaVu", "B", 22)
            pdf.multi_cell(text_width, 11, recipient, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
        pdf.set_x(22)

    qr_size = 52.0
    qr_x, qr_y = 297 - 22 - qr_size, 40.0
    pdf.image(qr, x=qr_x, y=qr_y, w=qr_size, h=qr_size)
    pdf.set_text_color(30, 30, 30)
    pdf.set_font("DejaVu", "", 8)
    pdf.set_xy(qr_x - 4, qr_y + qr_size + 1)
    if verify_caption:
        pdf.multi_cell(qr_size + 8, 4, verify_caption, align="C", new_x="LEFT", new_y="NEXT")
    pdf.set_font("DejaVu", "", 6.5)
    pdf.multi_cell(qr_size + 8, 3.5, verify_url, align="C")

    pdf.set_font("DejaVu", "", 9)
    pdf.set_xy(22, 210 - 30)
    pdf.cell(80, 6, issued_on.isoformat())
    if footer:
        pdf.set_xy(22, 210 - 24)
        pdf.set_font("DejaVu", "", 7)
        pdf.cell(0, 5, footer)
    return bytes(pdf.output())
