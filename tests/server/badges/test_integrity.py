"""Integrity checks: essays against earlier essays (MinHash/LSH over word shingles) and media
reuse (perceptual hashes), with texts and images made here; the external services' adapter
says clearly that it needs a contract."""

from __future__ import annotations

import io
import random
import unicodedata

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from server.badges.integrity import (
    SIGNATURE_BYTES,
    EssayIndex,
    ExternalServiceNotConfigured,
    IntegrityError,
    essay_signature,
    external_service,
    hamming,
    jaccard,
    media_hash,
    reused_media,
    shingles,
    suspected_copies,
)

ABAI = (
    "Абай Құнанбайұлының қара сөздерін оқығанда мен адамның ең басты байлығы білім мен "
    "еңбек екенін түсіндім. Ақын жастарды бос уақытын текке өткізбеуге, ғылым үйренуге, "
    "өз халқының тілі мен тарихын құрметтеуге шақырады. Отыз сегізінші сөзде ол ақыл, "
    "қайрат және жүрек бірлігі туралы жазады: біреуі ғана болса, адам толық бола алмайды. "
    "Бұл ой маған бүгін де өзекті көрінеді, өйткені біз көбіне тек бір қасиетімізді "
    "дамытамыз. Кітапты оқып болған соң мен күн тәртібімді өзгертіп, кешкі уақытта спортпен "
    "және оқумен айналысуды шештім."
)
PUSHKIN = (
    "Роман «Капитанская дочка» рассказывает о молодом офицере Петре Гринёве, который "
    "попадает в Белогорскую крепость во время восстания Пугачёва. Мне понравилось, как "
    "автор показывает честь и верность данному слову: отец велит сыну беречь честь смолоду, "
    "и герой следует этому совету даже тогда, когда ему грозит казнь. Книга заставила меня "
    "задуматься о том, что поступки в трудную минуту говорят о человеке больше, чем слова."
)
SEA = (
    "The Old Man and the Sea tells the story of Santiago, an old fisherman who goes far out "
    "into the Gulf Stream and hooks a giant marlin. For three days he fights the fish alone, "
    "and although sharks eat the catch on the way home, he returns with his dignity. I "
    "learned from this book that a person can be destroyed but not defeated, and that "
    "patience matters more than luck when the work is hard."
)


def vocabulary_essay(rnd: random.Random, n: int = 120) -> str:
    vocab = [
        "кітап",
        "оқу",
        "ой",
        "жазушы",
        "кейіпкер",
        "халық",
        "тарих",
        "өмір",
        "жол",
        "достық",
        "еңбек",
        "білім",
        "уақыт",
        "ауыл",
        "қала",
        "ана",
        "әке",
        "бала",
        "мектеп",
        "ұстаз",
        "табиғат",
        "жер",
        "су",
        "тау",
        "дала",
        "көктем",
        "жаз",
        "күз",
        "қыс",
        "жүрек",
        "ақыл",
        "қайрат",
        "арман",
        "мақсат",
        "отан",
        "тіл",
        "ән",
        "күй",
        "домбыра",
        "ат",
        "жылқы",
        "қонақ",
        "дастархан",
        "сыйлық",
    ]
    return " ".join(rnd.choice(vocab) for _ in range(n)) + "."


def edit(text: str, every: int, rnd: random.Random) -> str:
    ws = text.split()
    for i in range(0, len(ws), every):
        ws[i] = rnd.choice(["және", "бірақ", "сондай-ақ", "дегенмен"])
    return " ".join(ws)


# --- essays ----------------------------------------------------------------------------------


def test_shingles_are_normalised_words():
    decomposed = unicodedata.normalize("NFD", "Қара СӨЗДЕР, оқыдым!")
    assert shingles(decomposed) == {"қара сөздер оқыдым"}
    assert shingles("Straße  ist   lang") == shingles("STRASSE ist lang.")
    assert shingles("") == set()
    assert shingles("бір екі") == {"бір екі"}


def test_a_copy_with_cosmetic_changes_is_found():
    index = EssayIndex()
    index.add_text("abai", ABAI)
    index.add_text("pushkin", PUSHKIN)
    index.add_text("sea", SEA)
    copy = unicodedata.normalize("NFD", ABAI.upper().replace(",", " ;").replace(".", "!"))
    matches = index.similar(copy)
    assert [m.key for m in matches] == ["abai"]
    assert matches[0].similarity >= 0.95


def test_a_lightly_edited_copy_is_found_with_its_similarity():
    rnd = random.Random(3)
    index = EssayIndex()
    for key, text in [("abai", ABAI), ("pushkin", PUSHKIN), ("sea", SEA)]:
        index.add_text(key, text)
    edited = edit(ABAI, every=20, rnd=rnd)
    exact = jaccard(ABAI, edited)
    matches = index.similar(edited)
    assert [m.key for m in matches] == ["abai"]
    assert abs(matches[0].similarity - exact) < 0.15, (matches, exact)
    # a heavily rewritten text is not flagged
    rewritten = edit(ABAI, every=2, rnd=rnd)
    assert jaccard(ABAI, rewritten) < 0.2
    assert index.similar(rewritten) == []


def test_unrelated_essays_are_not_flagged():
    rnd = random.Random(11)
    index = EssayIndex()
    for i in range(200):
        index.add_text(f"e{i}", vocabulary_essay(rnd))
    for text in [ABAI, PUSHKIN, SEA]:
        assert index.similar(text) == []
    # even essays from the same small vocabulary (many shared words) differ in their shingles
    assert index.similar(vocabulary_essay(rnd)) == []


def test_a_copy_among_many_is_found_and_the_essay_itself_can_be_excluded():
    rnd = random.Random(5)
    essays = {f"e{i}": vocabulary_essay(rnd) for i in range(300)}
    index = EssayIndex()
    for key, text in essays.items():
        index.add_text(key, text)
    matches = index.similar(essays["e123"])
    assert matches[0].key == "e123" and matches[0].similarity == 1.0
    assert index.similar(essays["e123"], exclude=["e123"]) == []


def test_suspected_copies_from_stored_signatures():
    stored = [("abai", essay_signature(ABAI)), ("sea", essay_signature(SEA)), ("empty", b"")]
    assert all(len(s) == SIGNATURE_BYTES for k, s in stored if k != "empty")
    assert [m.key for m in suspected_copies(ABAI + " Жақсы кітап.", stored)] == ["abai"]
    assert suspected_copies(PUSHKIN, stored) == []
    # the signature is stable across runs (a fixed seed and scheme): stored ones stay comparable
    assert essay_signature(ABAI) == essay_signature(ABAI)


def test_estimates_follow_the_exact_jaccard():
    rnd = random.Random(23)
    for _ in range(40):
        base = vocabulary_essay(rnd, 150)
        other = edit(base, every=rnd.choice([3, 5, 8, 15, 40]), rnd=rnd)
        exact = jaccard(base, other)
        index = EssayIndex(threshold=0.05)
        index.add_text("base", base)
        found = index.similar(other)
        estimate = found[0].similarity if found else 0.0
        assert abs(estimate - exact) < 0.2, (estimate, exact)


def test_bad_essay_input():
    with pytest.raises(IntegrityError):
        essay_signature("x " * 60_000)
    index = EssayIndex()
    index.add_text("a", ABAI)
    with pytest.raises(IntegrityError):
        index.add_text("a", SEA)  # a key twice
    with pytest.raises(IntegrityError):
        index.add("b", b"\x00" * 10)  # a truncated stored signature
    with pytest.raises(IntegrityError):
        EssayIndex(threshold=0)
    assert index.similar("") == []


# --- media -----------------------------------------------------------------------------------


def photo(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A photo-like image: a smooth random field with a few shapes."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, size=(6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(small, "RGB").resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x, y = int(rng.integers(0, size[0] - 120)), int(rng.integers(0, size[1] - 120))
        w, h = int(rng.integers(30, 120)), int(rng.integers(30, 120))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        if rng.random() < 0.5:
            draw.ellipse([x, y, x + w, y + h], fill=colour)
        else:
            draw.rectangle([x, y, x + w, y + h], fill=colour)
    return img.filter(ImageFilter.GaussianBlur(2))


def jpeg(img: Image.Image, quality: int = 60) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def test_a_reused_photo_is_found_after_resizing_recompression_and_brightness():
    original = photo(1)
    earlier = [(f"item-{i}", media_hash(photo(i))) for i in range(1, 30)]
    variants = {
        "jpeg": jpeg(original, 40),
        "smaller": jpeg(original.resize((320, 240))),
        "brighter": jpeg(ImageEnhance.Brightness(original).enhance(1.15)),
        "cropped edge": jpeg(original.crop((6, 5, 634, 475))),
        "greyscale": jpeg(original.convert("L")),
    }
    for name, data in variants.items():
        matches = reused_media(media_hash(data), earlier)
        assert [m.key for m in matches][:1] == ["item-1"], name
        assert matches[0].distance <= 8, name


def test_different_photos_are_far_apart():
    hashes = [media_hash(photo(i)) for i in range(100, 140)]
    close = [
        (i, j)
        for i in range(len(hashes))
        for j in range(i + 1, len(hashes))
        if hamming(hashes[i], hashes[j]) <= 8
    ]
    assert close == []
    assert reused_media(media_hash(photo(999)), [("a", hashes[0]), ("b", hashes[1])]) == []


def test_media_hash_is_16_hex_digits_and_stable():
    h = media_hash(jpeg(photo(7)))
    assert len(h) == 16 and int(h, 16) >= 0
    assert media_hash(jpeg(photo(7))) == h
    assert hamming(h, h) == 0


def test_bad_media_input():
    with pytest.raises(IntegrityError):
        media_hash(b"not an image at all")
    with pytest.raises(IntegrityError):
        media_hash(b"\x00" * 20_000_001)
    huge = io.BytesIO()
    Image.new("1", (8000, 6000)).save(huge, format="PNG")  # 48 megapixels, a small file
    with pytest.raises(IntegrityError):
        media_hash(huge.getvalue())
    with pytest.raises(IntegrityError):
        hamming("zz", "00")
    with pytest.raises(IntegrityError):
        reused_media("abc", [])


# --- external services -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["antiplagiat", "TinEye"])
def test_external_services_need_a_contract(name):
    with pytest.raises(ExternalServiceNotConfigured, match="contract"):
        external_service(name)


def test_an_unknown_external_service():
    with pytest.raises(ExternalServiceNotConfigured, match="unknown"):
        external_service("google")
