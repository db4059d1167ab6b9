"""What each decision reason says to the person at the terminal, in Kazakh, Russian and English."""

from __future__ import annotations

import enum

from protocol.messages import Reason


class Lang(enum.StrEnum):
    KK = "kk"
    RU = "ru"
    EN = "en"


MESSAGES: dict[Reason, dict[Lang, str]] = {
    Reason.OK: {Lang.KK: "Рұқсат етілді", Lang.RU: "Разрешено", Lang.EN: "Allowed"},
    Reason.UNKNOWN_CARD: {
        Lang.KK: "Карта тіркелмеген",
        Lang.RU: "Карта не зарегистрирована",
        Lang.EN: "Card not registered",
    },
    Reason.CARD_BLOCKED: {
        Lang.KK: "Карта бұғатталған",
        Lang.RU: "Карта заблокирована",
        Lang.EN: "Card blocked",
    },
    Reason.NO_CONSENT: {
        Lang.KK: "Ата-ананың келісімі тіркелмеген",
        Lang.RU: "Нет согласия родителей",
        Lang.EN: "No parental consent on record",
    },
    Reason.OUTSIDE_HOURS: {
        Lang.KK: "Ауысымға кіру уақыты емес",
        Lang.RU: "Вне времени входа для смены",
        Lang.EN: "Outside the shift's entry hours",
    },
    Reason.PASSBACK: {
        Lang.KK: "Қайта өтуге болмайды (анти-пасбэк)",
        Lang.RU: "Повторный проход запрещён (антипассбэк)",
        Lang.EN: "Repeated pass not allowed (anti-passback)",
    },
    Reason.NOT_ELIGIBLE: {
        Lang.KK: "Тегін тамаққа құқығы жоқ",
        Lang.RU: "Нет права на бесплатное питание",
        Lang.EN: "Not eligible for a free meal",
    },
    Reason.ALREADY_SERVED: {
        Lang.KK: "Осы тамақтану уақытында тамақ берілді",
        Lang.RU: "В этот период питание уже выдано",
        Lang.EN: "Already served in this meal period",
    },
    Reason.OUTSIDE_MEAL_PERIOD: {
        Lang.KK: "Бұл ауысым үшін тамақтану уақыты емес",
        Lang.RU: "Сейчас не время питания для этой смены",
        Lang.EN: "Not a meal period for this shift",
    },
    Reason.NOT_AUTHORISED: {
        Lang.KK: "Өткізуге өкілеттігі жоқ",
        Lang.RU: "Нет полномочий пропустить ученика",
        Lang.EN: "Not authorised to let this student through",
    },
    Reason.UNKNOWN_STUDENT: {
        Lang.KK: "Оқушы табылмады",
        Lang.RU: "Ученик не найден",
        Lang.EN: "Student not found",
    },
    Reason.NOT_ALLOWED_HERE: {
        Lang.KK: "Бұл терминалда жарамсыз",
        Lang.RU: "Недействительно на этом терминале",
        Lang.EN: "Not valid at this terminal",
    },
    Reason.FACE_MISMATCH: {
        Lang.KK: "Бет картаның иесіне сәйкес келмейді",
        Lang.RU: "Лицо не совпадает с владельцем карты",
        Lang.EN: "Face does not match the card's owner",
    },
    Reason.NO_BIOMETRIC_CONSENT: {
        Lang.KK: "Биометрияға келісім жоқ: картаны пайдаланыңыз",
        Lang.RU: "Нет согласия на биометрию: используйте карту",
        Lang.EN: "No biometric consent: please use your card",
    },
    Reason.PAY: {
        Lang.KK: "Тегін тамақ емес: мәзірден таңдап, балансымен төлеңіз",
        Lang.RU: "Не бесплатное питание: выберите из меню и оплатите с баланса",
        Lang.EN: "Not a free meal: choose from the menu and pay from the balance",
    },
    Reason.INSUFFICIENT_BALANCE: {
        Lang.KK: "Балансында қаражат жеткіліксіз",
        Lang.RU: "Недостаточно средств на балансе",
        Lang.EN: "Not enough money on the balance",
    },
    Reason.ALLERGEN_BLOCKED: {
        Lang.KK: "Ата-ана бұл аллергенді тыйым салған",
        Lang.RU: "Родители запретили этот аллерген",
        Lang.EN: "A parent blocked this allergen",
    },
    Reason.DAILY_CAP_EXCEEDED: {
        Lang.KK: "Ата-ана белгілеген күндік шектен асады",
        Lang.RU: "Превышен дневной лимит, установленный родителями",
        Lang.EN: "Over the daily limit set by a parent",
    },
    Reason.NOT_ON_MENU: {
        Lang.KK: "Бүгінгі мәзірде жоқ",
        Lang.RU: "Нет в сегодняшнем меню",
        Lang.EN: "Not on today's menu",
    },
    Reason.VOUCHER_INVALID: {
        Lang.KK: "Ваучер жарамсыз: қолтаңба, мерзім немесе оқушы сәйкес емес",
        Lang.RU: "Ваучер недействителен: подпись, срок или ученик не совпадают",
        Lang.EN: "Voucher not valid: signature, dates or student do not match",
    },
    Reason.VOUCHER_USED: {
        Lang.KK: "Бұл ваучер бұрын пайдаланылған",
        Lang.RU: "Этот ваучер уже использован",
        Lang.EN: "This voucher has already been used",
    },
}


class Screen(enum.StrEnum):
    """What the canteen kiosk shows in large type, by colour."""

    FREE_MEAL = "free_meal"  # green
    SERVED = "served"  # green: a paid meal, debited
    ALREADY_SERVED = "already_served"  # amber, with when and where
    PAY = "pay"  # blue: the menu
    INSUFFICIENT_BALANCE = "insufficient_balance"  # red
    BLOCKED_CARD = "blocked_card"  # red
    DENIED = "denied"  # red: any other reason
    NOT_RECORDED = "not_recorded"  # red: the store cannot write (a full disk): nothing served


HEADLINES: dict[Screen, dict[Lang, str]] = {
    Screen.FREE_MEAL: {Lang.KK: "ТЕГІН ТАМАҚ", Lang.RU: "БЕСПЛАТНОЕ ПИТАНИЕ", Lang.EN: "FREE MEAL"},
    Screen.SERVED: {Lang.KK: "ТӨЛЕНДІ", Lang.RU: "ОПЛАЧЕНО", Lang.EN: "PAID"},
    Screen.ALREADY_SERVED: {
        # "not given again": the old "ТАМАҚ БЕРІЛДІ" (meal given) read like a go-ahead
        Lang.KK: "ҚАЙТА БЕРІЛМЕЙДІ",
        Lang.RU: "УЖЕ ВЫДАНО",
        Lang.EN: "ALREADY SERVED",
    },
    Screen.PAY: {Lang.KK: "ТӨЛЕМ", Lang.RU: "ОПЛАТА", Lang.EN: "PAY"},
    Screen.INSUFFICIENT_BALANCE: {
        Lang.KK: "ҚАРАЖАТ ЖЕТКІЛІКСІЗ",
        Lang.RU: "НЕДОСТАТОЧНО СРЕДСТВ",
        Lang.EN: "INSUFFICIENT BALANCE",
    },
    Screen.BLOCKED_CARD: {
        Lang.KK: "КАРТА БҰҒАТТАЛҒАН",
        Lang.RU: "КАРТА ЗАБЛОКИРОВАНА",
        Lang.EN: "BLOCKED CARD",
    },
    Screen.DENIED: {Lang.KK: "БАС ТАРТЫЛДЫ", Lang.RU: "ОТКАЗ", Lang.EN: "REFUSED"},
    Screen.NOT_RECORDED: {
        Lang.KK: "ЖАЗЫЛМАДЫ",
        Lang.RU: "НЕ ЗАПИСАНО",
        Lang.EN: "NOT RECORDED",
    },
}

# The kiosk's message when the store cannot write: no tap can be recorded, so none is served.
NOT_RECORDED_MESSAGE: dict[Lang, str] = {
    Lang.KK: "Жүйе жаза алмайды (жад толы): тамақ берілмеді. Кезекшіге хабарлаңыз; "
    "орын босағанда жүйе өзі қалпына келеді.",
    Lang.RU: "Система не может записать (память заполнена): питание не выдано. Сообщите "
    "дежурному; когда место освободится, система восстановится сама.",
    Lang.EN: "The system cannot record (storage full): nothing was served. Tell the person "
    "on duty; it recovers by itself once there is space again.",
}


def message(reason: Reason, lang: Lang = Lang.KK) -> str:
    return MESSAGES[reason][lang]
