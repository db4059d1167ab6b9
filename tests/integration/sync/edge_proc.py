"""An edge process for fault tests: journals a rush through the real store while syncing.

    python -m tests.integration.sync.edge_proc DB KEY_DIR --school S --device D --rush N [--drain]

Prints ``journaled <last_seq>`` lines as it commits; with ``--drain`` it stops journaling after
the rush and exits 0 once the outbox is empty. The test kills it with SIGKILL at random.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from edge.store import EdgeStore
from edge.sync import EdgeSync
from tests.support.sync import journal_rush


async def run(args: argparse.Namespace) -> int:
    store = await EdgeStore.open(Path(args.db), school=args.school, device=args.device)
    try:
        async with EdgeSync.from_key_dir(
            store, Path(args.key_dir), ack_timeout_s=2.0, gap_grace_s=0.5, backoff_max_s=2.0
        ) as sync:
            done = 0
            while done < args.rush:
                k = min(args.chunk, args.rush - done)
                last = await journal_rush(store, k, chunk=k)
                done += k
                print(f"journaled {last}", flush=True)
                await asyncio.sleep(args.pause)
            if args.drain:
                for _ in range(int(args.drain_timeout / 0.1)):
                    st = await sync.status()
                    if st.backlog == 0:
                        print(f"drained {st.last_seq}", flush=True)
                        return 0
                    await asyncio.sleep(0.1)
                return 1
    finally:
        await store.close()
    return 0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("db")
    p.add_argument("key_dir")
    p.add_argument("--school", required=True)
    p.add_argument("--device", required=True)
    p.add_argument("--rush", type=int, default=0)
    p.add_argument("--chunk", type=int, default=50)
    p.add_argument("--pause", type=float, default=0.01)
    p.add_argument("--drain", action="store_true")
    p.add_argument("--drain-timeout", type=float, default=60.0)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(asyncio.run(run(p.parse_args())))


if __name__ == "__main__":
    main()
