"""The meal and pass policy as data (DESIGN invariant 7): versions per region or school, each
from an effective date; a region's policy applies to each of its schools that has none of its
own. The effective version reaches the edges as policy_set: at save when it is effective
already, otherwise when ``publish_due_policies`` runs on or after its date (demo / cron)."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from protocol.messages import PolicyDoc, PolicySet
from server.accounts.access import Principal
from server.audit.service import audit
from server.clock import DEFAULT_ZONE, Clock, now_ms
from server.consents.models import CategoryCode
from server.models import School
from server.policy.models import MealPolicy, PolicyPublication
from server.sync.changelog import append_changes

N_ = str

SHIFTS = (1, 2, 3)
PERIOD_ROWS = 6
GRADES = tuple(range(0, 12))
# Roles at the edge that may authorise a manual pass (a lost card).
EDGE_ROLES = ("class_teacher", "deputy_director_on_duty")
TIMEZONES = (
    "Asia/Almaty",
    "Asia/Aqtau",
    "Asia/Aqtobe",
    "Asia/Atyrau",
    "Asia/Oral",
    "Asia/Qostanay",
    "Asia/Qyzylorda",
)
_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


class PolicyVersion(Protocol):
    @property
    def pk(self) -> int: ...
    @property
    def region_id(self) -> str | None: ...
    @property
    def school_id(self) -> str | None: ...
    @property
    def valid_from(self) -> dt.date: ...


P = TypeVar("P", bound=PolicyVersion)


def effective_policy(
    policies: Iterable[P], school: str, region: str | None, day: dt.date
) -> P | None:
    """The version in force at ``school`` on ``day``: the school's own newest version that has
    taken effect, else its region's; the later-saved wins on the same date. Pure."""
    own: list[P] = []
    regional: list[P] = []
    for p in policies:
        if p.valid_from > day:
            continue
        if p.school_id == school:
            own.append(p)
        elif p.school_id is None and region is not None and p.region_id == region:
            regional.append(p)
    pool = own or regional
    return max(pool, key=lambda p: (p.valid_from, p.pk)) if pool else None


# ------------------------------------------------------------------------------ the form


@dataclass(frozen=True, slots=True)
class FormProblem:
    field: str
    message: str  # an English msgid when ``detail`` is empty
    detail: str = ""  # the validator's own words (shift numbers, times, names)


class PolicyFormError(ValueError):
    def __init__(self, problems: list[FormProblem]) -> None:
        super().__init__("; ".join(p.detail or p.message for p in problems))
        self.problems = problems


def _one(fields: Mapping[str, Sequence[str]], name: str) -> str:
    values = fields.get(name) or [""]
    return values[0].strip()


def parse_policy_form(
    fields: Mapping[str, Sequence[str]], today: dt.date
) -> tuple[dt.date, PolicyDoc]:
    """The policy form (name -> values) as a PolicyDoc and its effective date. Pure; every
    problem is reported with its field, then the PolicyDoc's own checks (overlaps...)."""
    problems: list[FormProblem] = []
    valid_from = today
    try:
        valid_from = dt.date.fromisoformat(_one(fields, "valid_from"))
    except ValueError:
        problems.append(FormProblem("valid_from", N_("A date as YYYY-MM-DD.")))
    else:
        if valid_from < today:
            problems.append(
                FormProblem("valid_from", N_("The effective date cannot be in the past."))
            )

    def ints(name: str, allowed: Iterable[int]) -> list[int]:
        out: list[int] = []
        for v in fields.get(name, []):
            if v.strip().isdigit() and int(v) in allowed:
                out.append(int(v))
            elif v.strip():
                problems.append(FormProblem(name, N_("Unknown value."), v[:20]))
        return sorted(set(out))

    grades = ints("free_meal_grades", GRADES)
    categories = sorted({c for c in fields.get("free_meal_categories", []) if c})
    for c in categories:
        if c not in {k.value for k in CategoryCode}:
            problems.append(FormProblem("free_meal_categories", N_("Unknown category."), c[:40]))
    roles = sorted({r for r in fields.get("manual_pass_roles", []) if r})
    for r in roles:
        if r not in EDGE_ROLES:
            problems.append(FormProblem("manual_pass_roles", N_("Unknown value."), r[:40]))

    def time(name: str, required: bool) -> str | None:
        v = _one(fields, name)
        if not v:
            if required:
                problems.append(FormProblem(name, N_("A time as HH:MM is required.")))
            return None
        if len(v) == 4 and v[1] == ":":
            v = "0" + v
        if not _TIME.match(v):
            problems.append(FormProblem(name, N_("A time as HH:MM (00:00-23:59)."), v[:10]))
            return None
        return v

    shifts: list[dict[str, Any]] = []
    for n in SHIFTS:
        if not any(_one(fields, f"shift{n}_{k}") for k in ("entry_from", "entry_to", "starts_at")):
            continue
        shift: dict[str, Any] = {
            "number": n,
            "entry_from": time(f"shift{n}_entry_from", True),
            "entry_to": time(f"shift{n}_entry_to", True),
        }
        starts = time(f"shift{n}_starts_at", False)
        if starts is not None:
            shift["starts_at"] = starts
        shifts.append(shift)
    if not shifts:
        problems.append(FormProblem("shift1_entry_from", N_("At least one shift is required.")))

    periods: list[dict[str, Any]] = []
    for i in range(PERIOD_ROWS):
        name = _one(fields, f"period{i}_name")
        if not name and not _one(fields, f"period{i}_from") and not _one(fields, f"period{i}_to"):
            continue
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            problems.append(
                FormProblem(
                    f"period{i}_name",
                    N_("A meal period name in Latin letters, e.g. breakfast or lunch."),
                    name[:40],
                )
            )
        numbers = re.split(r"[,\s]+", _one(fields, f"period{i}_shifts"))
        nums = [int(x) for x in numbers if x.isdigit()]
        if not nums or any(not (x.isdigit() and int(x) in SHIFTS) for x in numbers if x):
            problems.append(FormProblem(f"period{i}_shifts", N_("Shift numbers such as 1 or 1,2.")))
        periods.append(
            {
                "name": name,
                "shifts": sorted(set(nums)),
                "from": time(f"period{i}_from", True),
                "to": time(f"period{i}_to", True),
            }
        )
    if not problems:
        problems.extend(_consistency(shifts, periods))
    zone = _one(fields, "timezone") or DEFAULT_ZONE
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(FormProblem("timezone", N_("Unknown timezone."), zone[:64]))
    if problems:
        raise PolicyFormError(problems)
    data: dict[str, Any] = {
        "timezone": zone,
        "free_meal_grades": grades,
        "free_meal_categories": categories,
        "anti_passback": _one(fields, "anti_passback") or "off",
        "manual_pass_roles": roles,
        "shift": shifts,
        "meal_period": periods,
        "valid_from": valid_from.isoformat(),
    }
    try:
        doc = PolicyDoc.model_validate(data, strict=False)
    except ValidationError as err:
        raise PolicyFormError(
            [
                FormProblem(
                    ".".join(str(x) for x in e["loc"]) or "policy",
                    N_("The policy is not valid:"),
                    f"{'.'.join(str(x) for x in e['loc'])} {e['msg'].removeprefix('Value error, ')}".strip(),
                )
                for e in err.errors()
            ]
        ) from err
    return valid_from, doc


def _consistency(shifts: list[dict[str, Any]], periods: list[dict[str, Any]]) -> list[FormProblem]:
    """The PolicyDoc's own rules, checked first so each problem names its form field in the
    user's language (the details are names and times only)."""
    out: list[FormProblem] = []
    for s in shifts:
        if s["entry_to"] <= s["entry_from"]:
            out.append(
                FormProblem(
                    f"shift{s['number']}_entry_to",
                    N_("The entry window must end after it starts."),
                    f"{s['entry_from']}–{s['entry_to']}",
                )
            )
    numbers = {s["number"] for s in shifts}
    seen: dict[str, int] = {}
    for i, p in enumerate(periods):
        if p["to"] <= p["from"]:
            out.append(
                FormProblem(
                    f"period{i}_to",
                    N_("The meal period must end after it starts."),
                    f"{p['name']} {p['from']}–{p['to']}",
                )
            )
        unknown = sorted(set(p["shifts"]) - numbers)
        if unknown:
            out.append(
                FormProblem(
                    f"period{i}_shifts",
                    N_("The meal period serves a shift that is not defined."),
                    f"{p['name']}: {','.join(str(x) for x in unknown)}",
                )
            )
        if p["name"] in seen:
            out.append(
                FormProblem(
                    f"period{i}_name", N_("Two meal periods have the same name."), p["name"]
                )
            )
        seen.setdefault(p["name"], i)
    for i, a in enumerate(periods):
        for j in range(i + 1, len(periods)):
            b = periods[j]
            common = sorted(set(a["shifts"]) & set(b["shifts"]))
            if common and a["from"] < b["to"] and b["from"] < a["to"]:
                out.append(
                    FormProblem(
                        f"period{j}_from",
                        N_("Meal periods of the same shift overlap:"),
                        f"{a['name']} {a['from']}–{a['to']}, {b['name']} {b['from']}–{b['to']} "
                        f"({','.join(str(x) for x in common)})",
                    )
                )
    return out


def form_values(doc: PolicyDoc | None, valid_from: dt.date) -> dict[str, Any]:
    """A stored policy as the form's initial values (what the edit page shows)."""
    out: dict[str, Any] = {"valid_from": valid_from.isoformat()}
    if doc is None:
        out.update(
            timezone=DEFAULT_ZONE,
            free_meal_grades=[1, 2, 3, 4],
            free_meal_categories=[c.value for c in CategoryCode],
            anti_passback="off",
            manual_pass_roles=["class_teacher"],
        )
        return out
    out.update(
        timezone=doc.timezone,
        free_meal_grades=list(doc.free_meal_grades),
        free_meal_categories=list(doc.free_meal_categories),
        anti_passback=doc.anti_passback.value,
        manual_pass_roles=list(doc.manual_pass_roles),
    )
    for s in doc.shifts:
        out[f"shift{s.number}_entry_from"] = s.entry_from
        out[f"shift{s.number}_entry_to"] = s.entry_to
        out[f"shift{s.number}_starts_at"] = s.starts_at or ""
    for i, p in enumerate(doc.meal_periods[:PERIOD_ROWS]):
        out[f"period{i}_name"] = p.name
        out[f"period{i}_shifts"] = ",".join(str(x) for x in p.shifts)
        out[f"period{i}_from"] = p.from_
        out[f"period{i}_to"] = p.to
    return out


def form_fields_from_values(values: Mapping[str, Any]) -> dict[str, list[str]]:
    """The inverse of ``form_values`` (tests and demo seeding post the same shape)."""
    out: dict[str, list[str]] = {}
    for k, v in values.items():
        out[k] = [str(x) for x in v] if isinstance(v, list) else [str(v)]
    return out


# ------------------------------------------------------------------------- the database


def doc_of(row: MealPolicy) -> PolicyDoc:
    return PolicyDoc.model_validate(row.doc, strict=False)


def local_today(zone_name: str | None = None) -> dt.date:
    """The date now in a zone (the default zone without one); see ``server.clock``."""
    return Clock().today_in(zone_name)


def school_today(school: School) -> dt.date:
    """The school's date now (a day starts at local midnight, not at UTC's)."""
    return Clock().school_today(school)


def versions_for(session: Session, school: School) -> list[MealPolicy]:
    """Every version that may apply to the school: its own and its region's."""
    cond = MealPolicy.school_id == school.id
    if school.region_id is not None:
        cond = or_(cond, MealPolicy.region_id == school.region_id)
    return list(session.execute(select(MealPolicy).where(cond).order_by(MealPolicy.pk)).scalars())


def effective_for(session: Session, school: School, day: dt.date) -> MealPolicy | None:
    return effective_policy(versions_for(session, school), school.id, school.region_id, day)


def publish_school(session: Session, school: School, day: dt.date) -> MealPolicy | None:
    """Send the school's effective policy as policy_set unless its edges already have it.
    Returns the version published now (None: nothing new). Caller commits."""
    eff = effective_for(session, school, day)
    if eff is None:
        return None
    pub = session.get(PolicyPublication, school.id)
    if pub is not None and pub.policy_pk == eff.pk:
        return None
    append_changes(session, school.id, [PolicySet(policy=doc_of(eff))])
    if pub is None:
        session.add(
            PolicyPublication(school_id=school.id, policy_pk=eff.pk, published_at_ms=now_ms())
        )
    else:
        pub.policy_pk = eff.pk
        pub.published_at_ms = now_ms()
    session.flush()
    return eff


def publish_due_policies(session: Session, today: dt.date) -> list[tuple[str, int]]:
    """Publish every school's policy that took effect by ``today`` and is not on its edges yet
    (the demo and a daily cron call this). Returns (school, version pk) published; commits."""
    done: list[tuple[str, int]] = []
    for school in session.execute(select(School).order_by(School.id)).scalars():
        eff = publish_school(session, school, today)
        if eff is not None:
            done.append((school.id, eff.pk))
    session.commit()
    return done


def save_policy(
    session: Session,
    who: Principal | None,
    *,
    region_id: str | None = None,
    school_id: str | None = None,
    valid_from: dt.date,
    doc: PolicyDoc,
) -> tuple[MealPolicy, list[str]]:
    """Store a version and publish it to the schools where it is in force today.
    Returns the row and the ids of the schools it was published to. Caller commits.
    ``who`` is None for the system (the demo seeding a policy from a TOML file)."""
    if (region_id is None) == (school_id is None):
        raise ValueError("a policy belongs to exactly one region or one school")
    row = MealPolicy(
        region_id=region_id,
        school_id=school_id,
        valid_from=valid_from,
        doc=doc.model_dump(mode="json", by_alias=True),
        created_by=who.user_pk if who is not None else None,
        created_at_ms=now_ms(),
    )
    session.add(row)
    session.flush()
    q = select(School)
    q = (
        q.where(School.id == school_id)
        if school_id is not None
        else q.where(School.region_id == region_id)
    )
    published: list[str] = []
    for school in session.execute(q.order_by(School.id)).scalars():
        eff = publish_school(session, school, school_today(school))
        if eff is not None and eff.pk == row.pk:
            published.append(school.id)
    audit(
        session,
        who,
        "change",
        "policy",
        school_id=school_id,
        summary=f"policy version #{row.pk} for {'school ' + school_id if school_id else 'region ' + str(region_id)}"
        f" from {valid_from.isoformat()}; published to {len(published)} school(s)",
    )
    return row, published


def load_policy_toml(path: str) -> PolicyDoc:
    """A policy file in the edge's format (examples/policy.toml) as a PolicyDoc, for seeding."""
    import tomllib

    with open(path, "rb") as f:
        return PolicyDoc.model_validate(tomllib.load(f), strict=False)
