"""A Python abxbus 2.5 process on one side of a Redis or NATS bridge, the other side being Rust.

    abxbus25_engine_bridge.py redis <url>           send <n>      emits n OrderPlaced events
    abxbus25_engine_bridge.py nats  <server> <subj> send <n>
    abxbus25_engine_bridge.py redis <url>           receive <n>   prints each event received as
    abxbus25_engine_bridge.py nats  <server> <subj> receive <n>   `@@event <json>`, after `@@ready`

The sender's events are also printed (`@@sent <json>`) so the Rust side compares every field.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from abxbus import BaseEvent, EventBus
from abxbus.bridge_nats import NATSEventBridge
from abxbus.bridge_redis import RedisEventBridge


class OrderPlaced(BaseEvent[str]):
    order_id: int
    customer: str
    items: list[str]
    shipping: dict[str, str]
    amount: float
    note: str | None = None


def bridge_from(argv: list[str]) -> tuple[Any, list[str]]:
    if argv[0] == 'redis':
        return RedisEventBridge(argv[1], name='PyRedisBridge'), argv[2:]
    return NATSEventBridge(argv[1], argv[2], name='PyNatsBridge'), argv[3:]


async def send(bridge: Any, n: int) -> None:
    bus = EventBus(name='PySender')
    bus.on('*', bridge.emit)
    await bridge.start()
    for i in range(n):
        event = bus.emit(
            OrderPlaced(
                order_id=i + 1,
                customer='zoë',
                items=['book', 'pen'],
                shipping={'city': 'Zürich', 'zip': '8001'},
                amount=12.5 + i,
                note=None if i % 2 else 'gift',
            )
        )
        await event
        print('@@sent ' + json.dumps(event.model_dump(mode='json'), separators=(',', ':')), flush=True)
    await bridge.close()


async def receive(bridge: Any, n: int) -> None:
    got: list[BaseEvent[Any]] = []
    done = asyncio.Event()

    def on_any(event: BaseEvent[Any]) -> None:
        got.append(event)
        print('@@event ' + json.dumps(event.model_dump(mode='json'), separators=(',', ':')), flush=True)
        if len(got) >= n:
            done.set()

    bridge.on('*', on_any)
    await bridge.start()
    nc = getattr(bridge, '_nc', None)
    if nc is not None:
        # nats-py's subscribe only queues the SUB for its flusher task: without a round trip
        # (`flush` is a PING answered by a PONG) the server may not have the subscription yet
        # when the other side, told we are ready, publishes, and the event is lost.
        await nc.flush()
    print('@@ready', flush=True)
    await asyncio.wait_for(done.wait(), timeout=60)
    await bridge.close()


def main() -> None:
    bridge, rest = bridge_from(sys.argv[1:])
    action, n = rest[0], int(rest[1])
    asyncio.run(send(bridge, n) if action == 'send' else receive(bridge, n))


if __name__ == '__main__':
    main()
