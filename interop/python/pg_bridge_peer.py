"""A Python abxbus process on the PostgreSQL bridge (abxbus.bridge_postgres.PostgresEventBridge),
driven by crates/bubus-postgres/tests/plain_interop.rs to check the wire both ways.

    pg_bridge_peer.py send URL CHANNEL COUNT   emit COUNT PgPing events, print `@@sent <id> <n>` each
    pg_bridge_peer.py recv URL CHANNEL COUNT   print `@@ready` once listening, then `@@event <json>`
                                               for each event received, exit after COUNT (60 s max)
"""

import asyncio
import json
import sys
from typing import Any

from abxbus import BaseEvent
from abxbus.bridge_postgres import PostgresEventBridge


class PgPing(BaseEvent[str]):
    n: int
    text: str
    tags: list[str]


def report(line: str) -> None:
    print(f'@@{line}', flush=True)


async def send(url: str, channel: str, count: int) -> None:
    bridge = PostgresEventBridge(url, channel=channel)
    await bridge.start()
    for n in range(count):
        event = PgPing(n=n, text=f'grüße {n}', tags=['a', str(n)])
        await bridge.emit(event)
        report(f'sent {event.event_id} {n}')
    await bridge.close()


async def recv(url: str, channel: str, count: int) -> None:
    bridge = PostgresEventBridge(url, channel=channel)
    got = 0
    done = asyncio.Event()

    async def on_event(event: Any) -> None:
        nonlocal got
        report('event ' + json.dumps(event.model_dump(mode='json')))
        got += 1
        if got >= count:
            done.set()

    bridge.on('*', on_event)
    await bridge.start()
    report('ready')
    try:
        await asyncio.wait_for(done.wait(), timeout=60.0)
    finally:
        await bridge.close()


if __name__ == '__main__':
    mode, url, channel, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    asyncio.run(send(url, channel, count) if mode == 'send' else recv(url, channel, count))
