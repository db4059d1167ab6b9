"""``qaqpa replay`` run as the real console script on files in a temporary directory.

Output contract: one JSON object per tap (block lines print nothing), with exactly the keys
at, terminal, student, decision, reason, meal. Bad input exits 2 with a message on stderr that
names the file (and, for taps, the line).

Streaming: decisions are printed as the taps file is read, so when line N of the taps is bad the
decisions of the good lines before it have already been printed, and nothing after it is. Roster
and policy problems are found before the first tap, so they print nothing on stdout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from qaqpa.cli import main

BIN = Path(sys.executable).parent / "qaqpa"
COMMAND = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "qaqpa.cli"]
KEYS = {"at", "terminal", "student", "decision", "reason", "meal"}
CONTRACT_REASONS = {
    "ok",
    "unknown_card",
    "card_blocked",
    "no_consent",
    "outside_hours",
    "passback",
    "not_eligible",
    "already_served",
    "outside_meal_period",
    "not_authorised",
}

POLICY = """\
timezone = "Asia/Almaty"
free_meal_grades = [1, 2, 3, 4]
free_meal_categories = ["large_family"]
anti_passback = "hard"
manual_pass_roles = ["class_teacher", "deputy_director_on_duty"]

[[shift]]
number = 1
entry_from = "07:00"
entry_to = "13:00"

[[shift]]
number = 2
entry_from = "12:30"
entry_to = "18:30"

[[meal_period]]
name = "breakfast"
shifts = [1]
from = "09:30"
to = "10:30"

[[meal_period]]
name = "lunch"
shifts = [1, 2]
from = "12:00"
to = "13:30"
"""

ROSTER: dict[str, Any] = {
    "school": "S1",
    "students": [
        {"id": "s1", "grade": 3, "class": "3A", "shift": 1, "cards": ["EM:0001"],
         "consent": {"data": True}},
        {"id": "s2", "grade": 7, "class": "7B", "shift": 1, "cards": ["em:0002"],
         "consent": {"data": True},
         "categories": [{"code": "large_family", "from": "2025-09-01", "to": "2025-10-06",
                         "doc": "board-12"}]},
        {"id": "s3", "grade": 8, "class": "8A", "shift": 2, "cards": ["EM:0003"],
         "consent": {"data": True}},
        {"id": "s4", "grade": 2, "class": "3A", "shift": 1, "cards": ["EM:0004"],
         "consent": {"data": False}},
        {"id": "s5", "grade": 9, "class": "9A", "shift": 1, "cards": ["EM:0005", "EM:0009"],
         "consent": {"data": True}},
    ],
    "staff": [
        {"id": "t1", "roles": ["class_teacher"], "classes": ["3A"], "cards": ["EM:T1"],
         "pin": "4821"},
        {"id": "d1", "roles": ["deputy_director_on_duty"], "cards": ["EM:D1"], "pin": "1111"},
    ],
    "blocked_cards": [{"card": "em:0009", "reason": "lost"}],
}  # fmt: skip


def t(hhmm: str, terminal: str, kind: str, **more: Any) -> dict[str, Any]:
    return {"at": f"2025-10-06T{hhmm}:00+05:00", "terminal": terminal, "kind": kind, **more}


def gate(hhmm: str, credential: str, direction: str = "in") -> dict[str, Any]:
    return t(hhmm, "gate-1", "turnstile", direction=direction, credential=credential)


def meal(hhmm: str, credential: str, terminal: str = "canteen-1") -> dict[str, Any]:
    return t(hhmm, terminal, "canteen", credential=credential)


def by_hand(hhmm: str, student: str, staff: str, pin: str) -> dict[str, Any]:
    mp = {"student": student, "staff_credential": staff, "pin": pin}
    return t(hhmm, "gate-1", "turnstile", direction="in", manual_pass=mp)


# (tap line, expected (student, decision, reason, meal)); None: a block line, no output.
DAY: list[tuple[dict[str, Any], tuple[str | None, str, str, str | None] | None]] = [
    (gate("07:55", "EM:0001"), ("s1", "grant", "ok", None)),
    (gate("07:56", "Em:0001"), ("s1", "deny", "passback", None)),  # case-insensitive
    (gate("07:57", "EM:9999"), (None, "deny", "unknown_card", None)),
    (gate("07:58", "EM:0004"), ("s4", "deny", "no_consent", None)),
    (gate("06:00", "EM:0003"), ("s3", "deny", "outside_hours", None)),
    (gate("08:00", "EM:0009"), ("s5", "deny", "card_blocked", None)),  # blocked in the roster
    (meal("09:40", "EM:0001"), ("s1", "grant", "ok", "free")),
    (meal("09:41", " em:0001 ", "canteen-2"), ("s1", "deny", "already_served", None)),
    (meal("09:42", "EM:0003"), ("s3", "deny", "outside_meal_period", None)),
    (meal("09:43", "EM:0005"), ("s5", "deny", "not_eligible", None)),
    (meal("09:44", "EM:0002"), ("s2", "grant", "ok", "free")),  # by category
    (t("10:00", "lib-1", "library", credential="EM:0002"), ("s2", "grant", "ok", None)),
    ({"at": "2025-10-06T10:05:00+05:00", "block_card": "eM:0002", "reason": "lost"}, None),
    (gate("10:06", "EM:0002", "out"), ("s2", "deny", "card_blocked", None)),
    (meal("12:10", "EM:0002"), ("s2", "deny", "card_blocked", None)),
    (by_hand("10:07", "s2", "EM:T1", "4821"), ("s2", "deny", "not_authorised", None)),
    (by_hand("10:08", "s2", "em:d1", "1111"), ("s2", "grant", "ok", None)),
    (by_hand("10:09", "s1", "EM:T1", "0000"), (None, "deny", "not_authorised", None)),
    (by_hand("10:10", "s99", "EM:D1", "1111"), (None, "deny", "unknown_student", None)),
    (meal("10:11", "EM:T1"), (None, "deny", "not_allowed_here", None)),
    (gate("10:12", "em:t1"), (None, "grant", "ok", None)),  # staff: no student
]


def qaqpa(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=cwd,
        timeout=60,
        check=False,
    )


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class InProcess:
    """``qaqpa.cli.main`` in this process: the same code path as the script, without the ~0.3 s
    start-up, for the long tables of bad inputs. The script itself is run by the other tests."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *args: str | Path, cwd: Path) -> Result:
        self.capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = self.capsys.readouterr()
        return Result(code, out, err)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> InProcess:
    return InProcess(capsys)


def write_inputs(
    tmp_path: Path,
    taps: list[dict[str, Any]] | str,
    roster: dict[str, Any] | str = ROSTER,
    policy: str = POLICY,
) -> tuple[Path, Path, Path]:
    r, p, tp = tmp_path / "roster.json", tmp_path / "policy.toml", tmp_path / "taps.jsonl"
    r.write_text(roster if isinstance(roster, str) else json.dumps(roster), encoding="utf-8")
    p.write_text(policy, encoding="utf-8")
    if isinstance(taps, str):
        tp.write_text(taps, encoding="utf-8")
    else:
        tp.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in taps), "utf-8")
    return r, p, tp


def replay(
    tmp_path: Path, taps: list[dict[str, Any]] | str, run: Any = qaqpa, **kw: Any
) -> Result | subprocess.CompletedProcess[str]:
    r, p, tp = write_inputs(tmp_path, taps, **kw)
    done: Result | subprocess.CompletedProcess[str] = run(
        "replay", "--roster", r, "--policy", p, "--taps", tp, cwd=tmp_path
    )
    return done


def test_crafted_day_gives_every_contract_reason(tmp_path: Path) -> None:
    done = replay(tmp_path, [line for line, _ in DAY])
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    out = [json.loads(line) for line in done.stdout.splitlines()]
    expected = [(line, want) for line, want in DAY if want is not None]
    assert len(out) == len(expected)  # one object per tap, none for the block line
    for got, (line, want) in zip(out, expected, strict=True):
        assert set(got) == KEYS
        assert (got["at"], got["terminal"]) == (line["at"], line["terminal"])
        assert (got["student"], got["decision"], got["reason"], got["meal"]) == want, line
    assert {o["reason"] for o in out} >= CONTRACT_REASONS


def test_examples_replay(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    done = qaqpa(
        "replay",
        "--roster",
        examples / "roster.json",
        "--policy",
        examples / "policy.toml",
        "--taps",
        examples / "taps.jsonl",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert all(set(o) == KEYS for o in out)
    assert len(out) == 13


def test_empty_taps_print_nothing(tmp_path: Path) -> None:
    done = replay(tmp_path, "\n\n")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_offsets_and_unicode_terminals_are_kept(tmp_path: Path) -> None:
    taps = [
        {"at": "2025-10-06T02:55:00Z", "terminal": "асхана-1", "kind": "turnstile",
         "direction": "in", "credential": "EM:0001"},
    ]  # fmt: skip
    done = replay(tmp_path, taps)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["terminal"] == "асхана-1" and got["decision"] == "grant"  # 07:55 in Almaty
    assert got["at"] == "2025-10-06T02:55:00+00:00"


def test_block_lines_block_from_then_on_even_for_earlier_times(tmp_path: Path) -> None:
    taps = [
        gate("08:00", "EM:0001"),
        {"at": "2025-10-06T08:05:00+05:00", "block_card": "EM:0001"},
        gate("07:59", "EM:0001", "out"),  # earlier clock time, but after the block line
    ]
    done = replay(tmp_path, taps)
    assert done.returncode == 0, done.stderr
    reasons = [json.loads(x)["reason"] for x in done.stdout.splitlines()]
    assert reasons == ["ok", "card_blocked"]


def _lines(*items: dict[str, Any] | str) -> str:
    return "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in items)


GOOD1, GOOD2 = gate("07:55", "EM:0001"), gate("07:58", "EM:0004")


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ('{"at": "2025-10-06T08:00:00+05:00", "terminal": ', "not valid JSON"),
        ("[1, 2]", "a tap must be a JSON object"),
        (json.dumps({**GOOD1, "colour": "red"}), "colour: Extra inputs are not permitted"),
        (json.dumps({**GOOD1, "at": "2025-10-06T08:00:00"}), "'at' needs a UTC offset"),
        (json.dumps({**GOOD1, "at": "yesterday"}), "at: Input should be a valid datetime"),
        (json.dumps({**GOOD1, "kind": "kitchen"}), "kind: Input should be"),
        (json.dumps({**GOOD1, "direction": None}), "a turnstile tap needs 'direction'"),
        (json.dumps({**GOOD1, "terminal": ""}), "terminal: String should have at least 1"),
        (json.dumps({k: v for k, v in GOOD1.items() if k != "credential"}), "exactly one of"),
        (
            json.dumps({**by_hand("08:00", "s1", "EM:T1", "4821"), "credential": "EM:0001"}),
            "exactly one of",
        ),
        (json.dumps({**by_hand("08:00", "s1", "EM:T1", "4821"), "manual_pass": {"student": "s1"}}),
         "manual_pass.staff_credential: Field required"),
        (json.dumps({"at": "2025-10-06T08:00:00", "block_card": "EM:0001"}), "needs a UTC offset"),
        (json.dumps({"at": "2025-10-06T08:00:00+05:00", "block_card": "EM:7777"}),
         "card EM:7777 is not in the roster"),
        (json.dumps({"at": "2025-10-06T08:00:00+05:00", "block_card": "EM:0001", "x": 1}),
         "x: Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_bad_tap_line_exits_2_naming_file_and_line(
    tmp_path: Path, cli: InProcess, bad: str, needle: str
) -> None:
    # Line 1 and 3 are good, line 2 is blank (still counted), line 4 is bad, line 5 is good.
    done = replay(tmp_path, _lines(GOOD1, "", GOOD2, bad, GOOD1), run=cli)
    assert done.returncode == 2
    taps = tmp_path / "taps.jsonl"
    assert done.stderr.startswith(f"qaqpa replay: {taps}:4: "), done.stderr
    assert needle in done.stderr
    assert "Traceback" not in done.stderr
    # Streaming: the decisions of lines 1 and 3 were printed, nothing of the bad line or after.
    printed = [json.loads(x) for x in done.stdout.splitlines()]
    assert [(p["student"], p["reason"]) for p in printed] == [("s1", "ok"), ("s4", "no_consent")]


def test_taps_that_are_not_utf8_exit_2_naming_the_line(tmp_path: Path) -> None:
    r, p, tp = write_inputs(tmp_path, [GOOD1])
    tp.write_bytes(json.dumps(GOOD1).encode() + b"\n" + b'{"terminal": "\xff"}\n')
    done = qaqpa("replay", "--roster", r, "--policy", p, "--taps", tp, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"qaqpa replay: {tp}:2: "), done.stderr
    assert "UTF-8" in done.stderr
    assert len(done.stdout.splitlines()) == 1


OVERLAP = POLICY.replace('from = "12:00"', 'from = "10:00"')


@pytest.mark.parametrize(
    ("policy", "needle"),
    [
        (OVERLAP, "meal periods breakfast (09:30-10:30) and lunch (10:00-13:30) overlap"),
        (POLICY.replace("Asia/Almaty", "Mars/Olympus"), "unknown timezone 'Mars/Olympus'"),
        (POLICY.replace('entry_to = "13:00"', 'entry_to = "06:00"'), "entry_to 06:00 is not after"),
        (POLICY.replace("shifts = [1]\n", "shifts = [3]\n"), "serves unknown shift(s) [3]"),
        (POLICY + "colour = 1\n", "meal_period.1.colour: Extra inputs are not permitted"),
        ("colour = 1\n" + POLICY, "colour: Extra inputs are not permitted"),
        (
            POLICY.replace('entry_from = "07:00"', "entry_from = 07:00:00"),
            "entry_from",
        ),  # a TOML time
        (POLICY.replace('"hard"', '"sometimes"'), "anti_passback"),
        ("timezone = ", "Invalid value"),  # malformed TOML
        ('timezone = "Asia/Almaty"\n', "shift: Field required"),
    ],
)
def test_bad_policy_exits_2_naming_the_file(
    tmp_path: Path, cli: InProcess, policy: str, needle: str
) -> None:
    done = replay(tmp_path, [GOOD1], run=cli, policy=policy)
    assert done.returncode == 2, done.stdout
    assert done.stderr.startswith(f"qaqpa replay: {tmp_path / 'policy.toml'}: "), done.stderr
    assert needle in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def _roster(**over: Any) -> dict[str, Any]:
    return {**ROSTER, **over}


STUDENT = ROSTER["students"][0]


@pytest.mark.parametrize(
    ("roster", "needle"),
    [
        ('{"school": "S1", "students": [', "not valid JSON"),
        ("[]", "valid dictionary"),
        (_roster(colour=1), "colour: Extra inputs are not permitted"),
        (_roster(students=[{**STUDENT, "grade": "three"}]), "students.0.grade"),
        (_roster(students=[{**STUDENT, "shift": 4}]), "students.0.shift"),
        (_roster(students=[{**STUDENT, "id": "s 1"}]), "id: String should match pattern"),
        (_roster(students=[STUDENT, {**STUDENT, "cards": []}], blocked_cards=[]),
         "student ids repeat"),
        (_roster(students=[STUDENT, {**STUDENT, "id": "s9"}], blocked_cards=[]),
         "card EM:0001 is bound twice (s1 and s9)"),
        (_roster(blocked_cards=["EM:4242"]), "blocked card EM:4242 is not bound to anyone"),
        (_roster(students=[{**STUDENT, "cards": ["no colon"]}]), "credential"),
        (
            _roster(students=[{**STUDENT, "categories": [
                {"code": "orphan", "from": "2025-10-01", "to": "2025-09-01"}]}]),
            "valid_to 2025-09-01 is before valid_from 2025-10-01",
        ),
        ({"students": []}, "school: Field required"),
    ],
)  # fmt: skip
def test_bad_roster_exits_2_naming_the_file(
    tmp_path: Path, cli: InProcess, roster: Any, needle: str
) -> None:
    done = replay(tmp_path, [GOOD1], run=cli, roster=roster)
    assert done.returncode == 2, done.stdout
    assert done.stderr.startswith(f"qaqpa replay: {tmp_path / 'roster.json'}: "), done.stderr
    assert needle in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("which", ["roster.json", "policy.toml"])
def test_input_files_that_are_not_utf8_exit_2(tmp_path: Path, cli: InProcess, which: str) -> None:
    r, p, tp = write_inputs(tmp_path, [GOOD1])
    (tmp_path / which).write_bytes(b"\xff\xfe\x00garbage")
    done = cli("replay", "--roster", r, "--policy", p, "--taps", tp, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"qaqpa replay: {tmp_path / which}: "), done.stderr
    assert "UTF-8" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("which", ["roster", "policy", "taps"])
def test_missing_file_exits_2(tmp_path: Path, cli: InProcess, which: str) -> None:
    r, p, tp = write_inputs(tmp_path, [GOOD1])
    paths = {"roster": r, "policy": p, "taps": tp}
    paths[which] = tmp_path / "missing.file"
    done = cli(
        "replay",
        *(x for k, v in paths.items() for x in (f"--{k}", v)),
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert f"{tmp_path / 'missing.file'}: cannot read: No such file or directory" in done.stderr
    assert done.stdout == ""


def test_the_script_reports_bad_input_the_same_way(tmp_path: Path) -> None:
    """One case of each table through the real script: exit status 2, stderr, partial stdout."""
    done = replay(tmp_path, _lines(GOOD1, "{oops", GOOD2))
    assert done.returncode == 2
    assert done.stderr == f"qaqpa replay: {tmp_path / 'taps.jsonl'}:2: not valid JSON: " + (
        "Expecting property name enclosed in double quotes\n"
    )
    assert [json.loads(x)["student"] for x in done.stdout.splitlines()] == ["s1"]
    done = replay(tmp_path, [GOOD1], policy=OVERLAP)
    assert (done.returncode, done.stdout) == (2, "")
    assert "policy.toml: (policy): Value error, meal periods breakfast" in done.stderr
    done = replay(tmp_path, [GOOD1], roster=_roster(blocked_cards=["EM:4242"]))
    assert (done.returncode, done.stdout) == (2, "")
    assert "roster.json: blocked card EM:4242 is not bound to anyone" in done.stderr


def test_crlf_line_endings_are_fine(tmp_path: Path, cli: InProcess) -> None:
    done = replay(tmp_path, _lines(GOOD1, GOOD2).replace("\n", "\r\n"), run=cli)
    assert done.returncode == 0, done.stderr
    assert [json.loads(x)["reason"] for x in done.stdout.splitlines()] == ["ok", "no_consent"]


def test_a_bare_number_is_not_a_time(tmp_path: Path) -> None:
    """`at` must say its UTC offset; an epoch number would be silently read as UTC."""
    from edge.replay import ReplayError, parse_taps

    taps = tmp_path / "taps.jsonl"
    line = '{"at": 1759719300, "terminal": "gate-1", "kind": "library", "credential": "EM:1"}\n'
    taps.write_text(line)
    with taps.open() as stream, pytest.raises(ReplayError, match=r"taps.jsonl:1: at: .*ISO 8601"):
        list(parse_taps(taps, stream))
