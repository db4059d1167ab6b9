"""The staff page's words in Kazakh, Russian and English.

The shell's own strings are here; each section brings its own table (``Section.strings``), merged
at start. A key missing in one language falls back to Kazakh, then to the key itself (a test
checks that every key has all three)."""

from __future__ import annotations

from collections.abc import Mapping

from edge.core.reasons import Lang

Texts = Mapping[str, Mapping[Lang, str]]


def _t(kk: str, ru: str, en: str) -> dict[Lang, str]:
    return {Lang.KK: kk, Lang.RU: ru, Lang.EN: en}


SHELL: dict[str, dict[Lang, str]] = {
    "page.title": _t("Qaqpa — қызметкер беті", "Qaqpa — страница сотрудника", "Qaqpa — staff page"),
    "signin.title": _t("Қызметкердің кіруі", "Вход сотрудника", "Staff sign-in"),
    "signin.reader": _t("Оқу құрылғысы", "Считыватель", "Reader"),
    "signin.pin": _t("PIN-код", "PIN-код", "PIN"),
    "signin.pin_help": _t(
        "PIN-ды осында немесе оқу құрылғысының пернетақтасында (# соңында) теріңіз",
        "Введите PIN здесь или на клавиатуре считывателя (в конце #)",
        "Type the PIN here or on the reader's keypad (end with #)",
    ),
    "signin.button": _t("Кіру", "Войти", "Sign in"),
    "signin.then_tap": _t(
        "Батырманы басқаннан кейін картаңызды оқу құрылғысына 30 секунд ішінде жақындатыңыз",
        "После нажатия приложите свою карту к считывателю в течение 30 секунд",
        "After pressing, tap your own card at the reader within 30 seconds",
    ),
    "signin.no_card": _t(
        "Карта оқылмады: қайталаңыз", "Карта не считана: повторите", "No card was read: try again"
    ),
    "signin.not_staff": _t(
        "Бұл қызметкер картасы емес немесе бұғатталған",
        "Это не карта сотрудника или она заблокирована",
        "Not a staff card, or the card is blocked",
    ),
    "signin.no_pin": _t(
        "Сізге PIN әлі берілмеген: мектеп әкімшісіне хабарласыңыз",
        "PIN ещё не задан: обратитесь к администратору школы",
        "No PIN set for you yet: ask the school admin",
    ),
    "signin.wrong_pin": _t("PIN қате", "Неверный PIN", "Wrong PIN"),
    "signin.wait": _t("Күтіңіз, секунд:", "Подождите, секунд:", "Wait, seconds:"),
    "signin.locked": _t(
        "PIN бұғатталды: мектеп әкімшісі жаңа PIN орнатуы керек",
        "PIN заблокирован: администратор школы должен задать новый PIN",
        "PIN locked: the school admin must set a new PIN",
    ),
    "signin.busy": _t(
        "Бұл оқу құрылғысын басқа бет күтіп тұр",
        "Этот считыватель ждёт другая страница",
        "Another page is waiting at this reader",
    ),
    "signin.unknown_reader": _t(
        "Белгісіз оқу құрылғысы", "Неизвестный считыватель", "Unknown reader"
    ),
    "signin.expired": _t("Бетті жаңартыңыз", "Обновите страницу", "Reload the page"),
    "home.title": _t("Бөлімдер", "Разделы", "Sections"),
    "home.none": _t(
        "Сіздің рөліңізге арналған бөлім жоқ",
        "Для вашей роли нет разделов",
        "No section for your role",
    ),
    "nav.home": _t("Басты бет", "Главная", "Home"),
    "nav.signout": _t("Шығу", "Выйти", "Sign out"),
    "nav.signed_in_as": _t("Кірген:", "Вошёл:", "Signed in:"),
}


class Strings:
    """Every string of the page: the shell's and the sections'."""

    def __init__(self, *tables: Texts) -> None:
        self._all: dict[str, Mapping[Lang, str]] = dict(SHELL)
        for table in tables:
            self.add(table)

    def add(self, table: Texts) -> None:
        for key, texts in table.items():
            if key in self._all and self._all[key] != texts:
                raise ValueError(f"staff page string {key!r} is defined twice")
            self._all[key] = texts

    def get(self, key: str, lang: Lang) -> str:
        texts = self._all.get(key)
        if texts is None:
            return key
        return texts.get(lang) or texts.get(Lang.KK) or key

    def keys(self) -> list[str]:
        return sorted(self._all)

    def table(self, key: str) -> Mapping[Lang, str]:
        return self._all[key]
