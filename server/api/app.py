"""The FastAPI application: the device enrolment endpoint and the console."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session, sessionmaker

from server.accounts.access import Principal
from server.accounts.throttle import LoginThrottle
from server.broker_auth import BrokerFilesError, write_broker_files
from server.centre_key import CentreKeyError, public_key_of
from server.clock import clock_for
from server.console.web import require
from server.db import make_engine, session_factory
from server.devices import DeviceExists, EnrolmentError, enrol
from server.http_limits import BodyLimitMiddleware
from server.log_filters import install_access_log_filter
from server.replica import replica_for
from server.settings import ServerSettings

log = logging.getLogger(__name__)


class EnrolRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=8, max_length=200, description="One-time enrolment token")
    device: str = Field(min_length=1, max_length=64, description="Device id the token was made for")
    public_key: str = Field(description="Ed25519 public key, 32 raw bytes in standard base64")
    pins_centre_key: bool = Field(
        default=False, description="The edge pins centre_key and verifies the downlink with it"
    )


class EnrolResponse(BaseModel):
    school: str
    device: str
    mqtt_username: str
    mqtt_password: str
    topic_prefix: str
    centre_key: str | None = None  # the centre's Ed25519 public key, base64 (None: unsigned)
    centre_key_id: str | None = None


def _sessions(request: Request) -> Iterator[Session]:
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory() as session:
        yield session


def _settings(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


SessionDep = Annotated[Session, Depends(_sessions)]
SettingsDep = Annotated[ServerSettings, Depends(_settings)]

router = APIRouter(prefix="/api/v1")


@router.post("/enrol")
def enrol_device(body: EnrolRequest, session: SessionDep, settings: SettingsDep) -> EnrolResponse:
    try:
        centre = public_key_of(settings)
    except CentreKeyError as err:
        log.error("enrolment refused: %s", err)
        raise HTTPException(status_code=503, detail="the centre key is not configured") from err
    try:
        key = base64.b64decode(body.public_key, validate=True)
    except (binascii.Error, ValueError) as err:
        raise HTTPException(status_code=422, detail="public_key is not base64") from err
    try:
        creds = enrol(
            session, settings, body.token, body.device, key, pins_centre_key=body.pins_centre_key
        )
    except EnrolmentError as err:
        session.rollback()
        raise HTTPException(status_code=403, detail=str(err)) from err
    except DeviceExists as err:
        session.rollback()
        raise HTTPException(status_code=409, detail=str(err)) from err
    session.commit()
    try:
        write_broker_files(session, settings)
    except BrokerFilesError:
        # The token is spent and the login recorded, so the device must get its credentials;
        # it keeps retrying the broker until `qaqpa server broker-files` succeeds.
        log.exception(
            "enrolled %s/%s but the broker files were not updated", creds.school, creds.device
        )
    return EnrolResponse(
        centre_key=centre[1] if centre else None,
        centre_key_id=centre[0] if centre else None,
        school=creds.school,
        device=creds.device,
        mqtt_username=creds.mqtt_username,
        mqtt_password=creds.mqtt_password,
        topic_prefix=settings.topic_prefix,
    )


docs_router = APIRouter()


@docs_router.get("/openapi.json", include_in_schema=False)
def openapi_schema(
    request: Request, _who: Annotated[Principal, require("api.docs")]
) -> JSONResponse:
    """The schema for operators only (signed in); the interactive /docs pages are off."""
    return JSONResponse(request.app.openapi())


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings if settings is not None else ServerSettings()
    # No public /docs, /redoc or /openapi.json: the schema is served to operators above.
    app = FastAPI(title="Qaqpa server", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    engine = make_engine(settings.database_url)
    app.state.sessions = session_factory(engine)
    app.state.replica = replica_for(settings, engine)  # reports read from a standby
    app.state.clock = clock_for(settings)
    app.state.login_throttle = LoginThrottle()
    install_access_log_filter()  # invitation tokens are in URL paths
    app.include_router(router)
    app.include_router(docs_router)
    if settings.broker_http_auth:
        from server.rabbit_auth.http import router as rabbit_auth_router

        app.include_router(rabbit_auth_router)
    from server.console.app import install_console

    # Added before the console's middleware, so it sits inside them: its 413 raised from
    # ``receive`` then reaches FastAPI directly, not wrapped in their task groups.
    app.add_middleware(BodyLimitMiddleware)
    install_console(app)
    return app
