"""HTTP API (FastAPI). Thin routes over the service functions."""

from server.api.app import create_app

__all__ = ["create_app"]
