"""A child process that sells paid meals from two terminals at once and prints ``SERVED <seq>``
only after each sale has committed (its "screen"). The fault test SIGKILLs it at a failpoint.

``voucher`` as the third argument: it sells soup instead of tea (a card voucher pays first,
then the balance), and every third sale of a terminal also shows a new QR voucher."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from pathlib import Path

from edge.core.model import Purchase
from edge.pipeline import Pipeline
from edge.store import EdgeStore
from tests.support.canteen_school import SCHOOL, qr


async def main(path: Path, sales: int, vouchers: bool) -> None:
    store = await EdgeStore.open(path, school=SCHOOL, device="edge-1")
    async with Pipeline(store) as pipeline:

        async def terminal(name: str) -> None:
            for n in range(sales):
                token = qr(f"Q-{name}-{n}", amount=10_000) if vouchers and n % 3 == 0 else None
                sold = await pipeline.sell(
                    Purchase(
                        dt.datetime.now(dt.UTC),
                        name,
                        "s-pay",
                        ("soup",) if vouchers else ("tea",),
                        qr_token=token,
                    )
                )
                if sold.decision.granted:
                    print(f"SERVED {sold.event.seq}", flush=True)

        await asyncio.gather(terminal("canteen-1"), terminal("canteen-2"))
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:] == ["voucher"]))
