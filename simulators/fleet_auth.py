"""The server's RabbitMQ HTTP auth backend (``server/rabbit_auth``) on its own, for the cluster
target of ``qaqpa bench fleet``: the nodes ask it who may log in and use which topic, from the
bench's devices table. ``python -m simulators.fleet_auth PORT`` with the server's settings in
the environment (``QAQPA_SERVER_DATABASE_URL``...)."""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI

from server.db import make_engine, session_factory
from server.rabbit_auth.http import router
from server.settings import ServerSettings


def main() -> None:
    settings = ServerSettings()
    app = FastAPI()
    app.state.settings = settings
    app.state.sessions = session_factory(make_engine(settings.database_url))
    app.include_router(router)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")


if __name__ == "__main__":
    main()
