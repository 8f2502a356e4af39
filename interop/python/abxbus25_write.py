"""Python abxbus 2.5 writes events, a bus snapshot and its write-ahead log for Rust to read.

    abxbus25_write.py DIR

A bus with Python's `WALEventBusMiddleware` processes an order (a handler that emits and awaits a
child, one that fails, nested payloads, a field the class does not declare, configuration
overrides) and a list-typed event. Written into DIR:

* `events.json`: `model_dump(mode='json')` of every event of the bus's history, and one event
  never emitted;
* `snapshot.json`: `EventBus.model_dump()` of a bus with handlers, a completed event and two
  queued ones (one with a seeded result);
* `wal.jsonl`: what `WALEventBusMiddleware` wrote (a line per completed event).

crates/bubus/tests/interop_abxbus.rs reads them and compares every field. Prints `@@ok written`.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from abxbus import BaseEvent, EventBus
from abxbus.helpers import CleanShutdownQueue
from abxbus.middlewares import WALEventBusMiddleware


class LineItem(BaseModel):
    sku: str
    quantity: int
    options: dict[str, str]


class OrderPlaced(BaseEvent[int]):
    order_id: str
    items: list[LineItem]
    note: str | None = None


class ChargeCard(BaseEvent[str]):
    order_id: str
    cents: int


class PickItems(BaseEvent[list[str]]):
    skus: list[str]


async def main(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    bus = EventBus(name='PyShop', middlewares=[WALEventBusMiddleware(directory / 'wal.jsonl')])

    async def place(event: OrderPlaced) -> int:
        charge = event.emit(ChargeCard(order_id=event.order_id, cents=1999))
        await charge
        return 1999

    async def audit(event: OrderPlaced) -> int:
        raise ValueError('audit log is full')

    async def charge(event: ChargeCard) -> str:
        return f'charged {event.cents} cents'

    async def pick(event: PickItems) -> list[str]:
        return [f'shelf-{sku}' for sku in event.skus]

    bus.on(OrderPlaced, place)
    bus.on(OrderPlaced, audit)
    bus.on(ChargeCard, charge)
    bus.on(PickItems, pick)

    order = bus.emit(
        OrderPlaced(
            order_id='ord-7',
            items=[LineItem(sku='ENG-1', quantity=2, options={'gift': 'yes'})],
            note='ünïcødé',
            event_timeout=20.0,
            event_handler_timeout=4.0,
            undeclared={'kept': [1, 2.5, None]},
        )
    )
    await order
    picked = bus.emit(PickItems(skus=['a', 'b'], event_handler_concurrency='parallel'))
    await picked
    await bus.wait_until_idle()

    events = [event.model_dump(mode='json') for event in bus.event_history.values()]
    events.append(PickItems(skus=[], event_concurrency='global-serial').model_dump(mode='json'))
    (directory / 'events.json').write_text(json.dumps(events, indent=2), encoding='utf-8')

    queue_bus = EventBus(name='PyQueue', event_handler_detect_file_paths=False)

    async def queued_charge(event: ChargeCard) -> str:
        return f'queued {event.cents}'

    entry = queue_bus.on(ChargeCard, queued_charge)
    done = queue_bus.emit(ChargeCard(order_id='q0', cents=1))
    await done
    queued = [ChargeCard(order_id='q1', cents=2), ChargeCard(order_id='q2', cents=3)]
    queued[0].event_result_update(handler=entry, eventbus=queue_bus, status='pending').update(
        status='completed', result='seeded'
    )
    queue_bus.pending_event_queue = CleanShutdownQueue[BaseEvent[Any]](maxsize=0)
    for event in queued:
        queue_bus.event_history[event.event_id] = event
        queue_bus.pending_event_queue.put_nowait(event)
    (directory / 'snapshot.json').write_text(json.dumps(queue_bus.model_dump(), indent=2), encoding='utf-8')

    await bus.destroy()
    await queue_bus.destroy()
    print('@@ok written', flush=True)


if __name__ == '__main__':
    asyncio.run(main(Path(sys.argv[1])))
