"""Runs the staff page inside the daemon's own asyncio loop."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from edge.config import ConfigError, EdgeConfig
from edge.core.reasons import Lang
from edge.pipeline import Clock, Pipeline, utc_now
from edge.staff.app import create_app
from edge.staff.auth import StaffAuth
from edge.staff.capture import ReaderInput
from edge.staff.i18n import Strings
from edge.staff.pins import PinKeyError, PinRule, load_pin_key
from edge.staff.sections import GateOpener, Section, StaffContext
from edge.store import EdgeStore
from edge.web.serve import InLoopHttp

log = logging.getLogger(__name__)


class StaffServer:
    """``async with StaffServer(...) as s: s.url`` serves the staff page until exit."""

    def __init__(
        self,
        ctx: StaffContext,
        host: str,
        port: int,
        *,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.ctx = ctx
        self.readers = ctx.readers
        self._http = InLoopHttp(
            create_app(ctx, secure_cookies=tls is not None), host, port, "staff-page", tls
        )

    @classmethod
    def from_config(
        cls,
        cfg: EdgeConfig,
        store: EdgeStore,
        pipeline: Pipeline,
        gates: Mapping[str, GateOpener],
        clock: Clock = utc_now,
        *,
        sections: Sequence[Section] | None = None,
        rule: PinRule | None = None,
    ) -> StaffServer:
        assert cfg.staff is not None and cfg.staff_pin_key_file is not None
        try:
            key = load_pin_key(cfg.staff_pin_key_file)
        except (OSError, PinKeyError) as err:
            raise ConfigError(f"staff_pin_key_file: {err}") from err
        if sections is None:
            from edge.staff.registry import SECTIONS

            sections = SECTIONS
        readers = ReaderInput()
        auth = StaffAuth(
            store,
            readers,
            key,
            cfg.staff_sign_in_terminals,
            lifetime_s=cfg.staff.session_minutes * 60,
            rule=rule,
        )
        ctx = StaffContext(
            store=store,
            pipeline=pipeline,
            readers=readers,
            gates=gates,
            terminals=cfg.terminals,
            clock=clock,
            language=cfg.staff.language or cfg.language or Lang.KK,
            auth=auth,
            strings=Strings(),
            sections=tuple(sections),
        )
        return cls(ctx, cfg.staff.host, cfg.staff.port, tls=cfg.staff.tls)

    @property
    def url(self) -> str:
        return self._http.url

    async def __aenter__(self) -> StaffServer:
        await self._http.__aenter__()
        log.info("staff page at %s", self.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.__aexit__(*exc)
