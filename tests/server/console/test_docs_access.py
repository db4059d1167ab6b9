"""The OpenAPI schema is for signed-in operators only; the interactive docs pages are off."""

from __future__ import annotations

from tests.support.console import World


def test_docs_are_not_public(make_browser, world: World) -> None:  # type: ignore[no-untyped-def]
    anonymous = make_browser()
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert anonymous.get(path).status_code == 404, path
    r = anonymous.get("/openapi.json")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert make_browser("admin1").get("/openapi.json").status_code == 403
    r = make_browser("operator").get("/openapi.json")
    assert r.status_code == 200 and "/api/v1/enrol" in r.json()["paths"]
