"""Shared fixtures: a fresh PostgreSQL database per test, the real app through Starlette's
TestClient and a small world of schools and users (console); a private topic prefix per test and
private Mosquitto brokers (sync).

``QAQPA_TEST_TRAVEL=2031-03-15T09:00+05:00`` (or ``"2031-03-15T09:00 Asia/Almaty"``) runs every
test with the clock at that moment (ticking): time-machine inside this process, libfaketime
(Debian's ``faketime``) for the processes a test starts. A test that reads the clock instead of
taking its moment as an input fails then."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from server.accounts import passwords
from server.accounts.access import Grant, Role
from server.accounts.service import create_user
from server.api.app import create_app
from server.canteen.settings import CanteenSettings
from server.canteen.wiring import install as install_canteen
from server.db import make_engine, session_factory
from server.migrate import upgrade
from server.notify.settings import NotifySettings
from server.people.models import Guardian, SchoolClass, StudentGuardian
from server.people.service import add_school
from server.settings import ServerSettings
from simulators.notify_sinks import SmsSink, SmtpSink
from simulators.payment_provider import CALLBACK_PATH, PaymentProviderSimulator
from tests.support.broker_cluster import ClusterEnv, start_cluster
from tests.support.canteen import SECRET, canteen_settings
from tests.support.centre import centre_key_file
from tests.support.clock import travel_from_env
from tests.support.console import Browser, World, add_student, password_of
from tests.support.markers import (
    GUARD,
    install_socket_guard,
    mark_by_fixtures,
    mark_serial,
)
from tests.support.services import SYSTEM_BROKER, PrivateBroker, free_port, fresh_pg_database

# argon2id at RFC 9106's parameters (the production hasher) costs ~0.2 s a hash here; the world
# fixture makes seventeen users and most console tests sign in, several hundred times in all.
# In this process the suite hashes with argon2id at the smallest cost: the same code paths, the
# same format (a hash stores its parameters, so verification is unchanged). The production
# parameters are asserted against PRODUCTION_HASHER (tests/server/accounts/test_accounts.py);
# the processes a test starts (the demo, the CLI) hash at full cost.
PRODUCTION_HASHER = passwords._hasher


def pytest_configure(config: pytest.Config) -> None:
    install_socket_guard()
    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_by_fixtures(items)
    mark_serial(items)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    GUARD.start(item)
    try:
        with travel_from_env():
            yield
    finally:
        GUARD.finish()


@pytest.fixture(autouse=True)
def _service_markers() -> Iterator[None]:
    """Fails a test that used a real service without carrying its marker."""
    yield
    missing = sorted(GUARD.unmarked)
    if missing:
        marks = ", ".join(f"pytest.mark.{m}" for m in missing)
        pytest.fail(f"this test uses {', '.join(missing)} without its marker: add {marks}")


@pytest.fixture
def pg_console_url() -> Iterator[str]:
    with fresh_pg_database() as url:
        yield url


@pytest.fixture
def settings(pg_console_url: str) -> ServerSettings:
    return ServerSettings(
        database_url=pg_console_url,
        topic_prefix=f"qaqpa-test/{uuid.uuid4().hex[:10]}/v1",
        centre_key_file=centre_key_file(),
    )


@pytest.fixture
def sessions(settings: ServerSettings) -> Iterator[object]:
    engine = make_engine(settings.database_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def db(sessions) -> Iterator[Session]:  # type: ignore[no-untyped-def]
    with sessions() as s:
        yield s


@pytest.fixture
def app(settings: ServerSettings):  # type: ignore[no-untyped-def]
    return create_app(settings)


@pytest.fixture
def browser(app) -> Iterator[Browser]:  # type: ignore[no-untyped-def]
    with TestClient(app) as client:
        yield Browser(client)


@pytest.fixture
def make_browser(app):  # type: ignore[no-untyped-def]
    clients: list[TestClient] = []

    def make(login: str | None = None) -> Browser:
        c = TestClient(app)
        clients.append(c)
        b = Browser(c)
        if login is not None:
            b.login(login)
        return b

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def world(db: Session) -> World:
    """Region R1: schools S1, S2; region R2: school S3. Classes 3A, 7B in each school; two
    students per class; one user per role scoped to S1 (class teacher of S1/3A), one parent of
    the first 3A student of S1, a regional operator of R1 and an operator; gifted-registry
    coordinators of S1 (gifted1) and of R1 (giftedr)."""
    add_school(db, "S1", "School No. 1", region="R1", region_name="Region One")
    add_school(db, "S2", "School No. 2", region="R1")
    add_school(db, "S3", "School No. 3", region="R2", region_name="Region Two")
    w = World(schools=["S1", "S2", "S3"], classes={}, students={})
    for school in w.schools:
        for name, grade, shift in (("3A", 3, 1), ("7B", 7, 2)):
            c = SchoolClass(school_id=school, name=name, grade=grade, shift=shift)
            db.add(c)
            db.flush()
            w.classes[f"{school}/{name}"] = c.pk
            for i in (1, 2):
                ref = f"{school.lower()}-{name.lower()}-{i}"
                st = add_student(db, school, c.pk, ref, f"Surname{i}", f"Name{name}{school}")
                w.students[ref] = st.pk
    grants = {
        "operator": Grant(Role.OPERATOR),
        "regional": Grant(Role.REGIONAL_OPERATOR, region_id="R1"),
        "admin1": Grant(Role.SCHOOL_ADMIN, school_id="S1"),
        "duty1": Grant(Role.DUTY_DEPUTY, school_id="S1"),
        "teacher1": Grant(Role.CLASS_TEACHER, school_id="S1", class_pk=w.classes["S1/3A"]),
        "social1": Grant(Role.SOCIAL_PEDAGOGUE, school_id="S1"),
        "canteen1": Grant(Role.CANTEEN_MANAGER, school_id="S1"),
        "parent1": Grant(Role.PARENT),
        "admin3": Grant(Role.SCHOOL_ADMIN, school_id="S3"),
        "gifted1": Grant(Role.GIFTED_COORDINATOR, school_id="S1"),
        "giftedr": Grant(Role.REGIONAL_GIFTED_COORDINATOR, region_id="R1"),
        "librarian1": Grant(Role.LIBRARIAN, school_id="S1"),
        "approver1": Grant(Role.REGION_APPROVER, region_id="R1"),
        # tutoring: a coordinator of region R1's projects, a volunteer tutor, a council member
        "coord1": Grant(Role.TUTORING_COORDINATOR, region_id="R1"),
        "volunteer1": Grant(Role.VOLUNTEER),
        "council1": Grant(Role.COUNCIL_MEMBER),
        "counsel1": Grant(Role.SENIOR_COUNSELLOR, school_id="S1"),
    }
    for login, grant in grants.items():
        u = create_user(db, login, f"User {login}", [grant], password=password_of(login))
        u.must_change_password = False
        w.users[login] = u.pk
    g = Guardian(full_name="Parent One", phone="+77010000001", user_pk=w.users["parent1"])
    db.add(g)
    db.flush()
    db.add(StudentGuardian(student_pk=w.students["s1-3a-1"], guardian_pk=g.pk))
    db.commit()
    return w


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_pg_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'server.db'}"
    upgrade(url)
    return url


@pytest.fixture
def prefix() -> str:
    return f"qaqpa-test/{uuid.uuid4().hex[:10]}/v1"


@pytest.fixture
def make_settings(prefix: str) -> Callable[..., ServerSettings]:
    def make(database_url: str, **kw: object) -> ServerSettings:
        values: dict[str, object] = {
            "database_url": database_url,
            "mqtt_host": SYSTEM_BROKER[0],
            "mqtt_port": SYSTEM_BROKER[1],
            "topic_prefix": prefix,
            "centre_key_file": centre_key_file(),
        }
        values.update(kw)
        return ServerSettings.model_validate(values)

    return make


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[Callable[[str], PrivateBroker]]:
    brokers: list[PrivateBroker] = []

    def start(extra_conf: str = "") -> PrivateBroker:
        d = tmp_path / f"broker{len(brokers)}"
        d.mkdir()
        b = PrivateBroker(d, free_port(), extra_conf)
        b.start()
        brokers.append(b)
        return b

    yield start
    for b in brokers:
        b.stop()


@pytest.fixture(scope="session")
def rabbit_cluster() -> Iterator[ClusterEnv]:
    """Three RabbitMQ nodes over TLS (README "The broker cluster"): started once, on first use."""
    env = start_cluster()
    yield env
    env.stop()


# canteen at the centre: settings on the app, the payment provider's simulator
@pytest.fixture
def cs(app: Any) -> CanteenSettings:
    s = canteen_settings()
    install_canteen(app, s)
    return s


@pytest.fixture
def provider(cs: CanteenSettings, make_browser: Any) -> PaymentProviderSimulator:
    client = make_browser().client
    return PaymentProviderSimulator(CALLBACK_PATH, SECRET, client=client)


# notifications: the local SMS gateway and SMTP server
@pytest.fixture
def sms() -> Iterator[SmsSink]:
    with SmsSink() as sink:
        yield sink


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def engine(settings: ServerSettings) -> Iterator[Engine]:
    e = make_engine(settings.database_url)
    yield e
    e.dispose()


@pytest.fixture
def nset(sms: SmsSink, smtp: SmtpSink) -> NotifySettings:
    return NotifySettings(
        sms_url=sms.url(),
        email_url=smtp.url(),
        backoff_base_s=1,
        backoff_cap_s=10,
        max_attempts=3,
        send_timeout_s=5,
    )
