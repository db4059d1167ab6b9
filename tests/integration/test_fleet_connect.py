"""The fleet simulator connects its schools without holding the event loop: paho's connect is
blocking up to the CONNECT packet (over TLS the whole handshake) and the packet is written by
the loop, so thousands of blocking connects in a row left the first CONNECTs unsent past the
broker's login timeout (seen against the RabbitMQ cluster: the fleet never connected). Nothing
here talks to a broker: the connect is replaced by a blocking stand-in."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from protocol.signing import generate_key
from simulators import fleet as fleet_mod
from simulators.fleet import Fleet, Login, SimSchool
from simulators.fleet_brokers import Node


def test_the_loop_runs_between_blocking_connects(monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []

    def blocking_connect(self: SimSchool) -> None:
        time.sleep(fleet_mod.YIELD_S * 1.2)  # a slow handshake
        order.append(f"connect {self.school}")
        self.online = True

    monkeypatch.setattr(SimSchool, "connect", blocking_connect)

    async def run() -> None:
        fleet = Fleet(asyncio.get_running_loop(), [Node("127.0.0.1", 9)], "p/v1", {}, "3.1.1")
        key = generate_key()
        logins = [Login(f"S{i}", "edge-1", f"u{i}", "pw", key) for i in range(4)]

        async def the_loop() -> None:
            while True:
                order.append("loop")
                await asyncio.sleep(0)

        watcher = asyncio.ensure_future(the_loop())
        await asyncio.sleep(0)
        _seconds, not_connected = await fleet.connect(logins, within=30.0)
        watcher.cancel()
        assert fleet._misc is not None
        fleet._misc.cancel()
        assert not_connected == 0

    asyncio.run(run())
    connects = [i for i, x in enumerate(order) if x.startswith("connect")]
    assert len(connects) == 4
    # between one school's connect and the next, the loop ran (wrote CONNECTs, read CONNACKs)
    for a, b in itertools.pairwise(connects):
        assert "loop" in order[a + 1 : b], order
