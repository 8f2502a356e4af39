"""Python abxbus 2.5 on the other end of a bridge from Rust, with abxbus's own bridges.

    abxbus25_sqlite_http_peer.py send sqlite PATH TABLE
    abxbus25_sqlite_http_peer.py send http URL
    abxbus25_sqlite_http_peer.py listen sqlite PATH TABLE COUNT
    abxbus25_sqlite_http_peer.py listen http URL COUNT

`send`: a bus `PyShop` forwards every event to the bridge (`SQLiteEventBridge(PATH, TABLE)` or
`HTTPEventBridge(send_to=URL)`); it emits a typed `OrderPlaced` (nested models, a field the class
does not declare) whose handler emits and awaits a `ChargeCard` child. Prints `@@sent <json>` with
`model_dump(mode='json')` of each event as it was handed to the bridge, then `@@ok sent`.

`listen`: starts the bridge (`SQLiteEventBridge(PATH, TABLE)` or `HTTPEventBridge(listen_on=URL)`),
prints `@@ready` (for HTTP `@@ready <URL>` with the port it bound: a URL with port 0 binds a free
port, with no window between choosing the port and listening on it), and prints `@@received <json>` with `model_dump(mode='json')` of each of the
COUNT events its handler gets (as abxbus's bridges deliver them: `event_reset()`, so a new id and
an empty path), then validates each with the class of its type (`@@ok typed <type>`). Exits 1 if
COUNT events do not arrive within 60 s.

The Rust side (crates/bubus-sqlite/tests/interop_sqlite_bridge.rs,
crates/bubus-http/tests/interop_http_bridge.rs) compares every field.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel

from abxbus import BaseEvent, EventBus
from abxbus.bridges import HTTPEventBridge, SQLiteEventBridge
from checks import finish, mismatch, ok


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


TYPES: dict[str, type[BaseEvent[Any]]] = {'OrderPlaced': OrderPlaced, 'ChargeCard': ChargeCard}


def emit_line(tag: str, event: BaseEvent[Any]) -> None:
    print(f'@@{tag} {json.dumps(event.model_dump(mode="json"), separators=(",", ":"))}', flush=True)


def make_bridge(kind: str, args: list[str], *, listen: bool) -> Any:
    if kind == 'sqlite':
        return SQLiteEventBridge(args[0], args[1], poll_interval=0.02)
    if kind == 'http':
        return HTTPEventBridge(listen_on=args[0]) if listen else HTTPEventBridge(send_to=args[0])
    raise SystemExit(f'unknown transport {kind!r}')


def bound_url(bridge: Any, url: str) -> str:
    """`url` with the port the started HTTP bridge's server is bound to (abxbus 2.5.79 keeps its
    `asyncio` server in `_server`; a URL with port 0 binds a free one)."""
    server = getattr(bridge, '_server', None)
    sockets = getattr(server, 'sockets', None)
    if not sockets:
        raise SystemExit('the HTTP bridge has no listening socket to read its port from')
    port = sockets[0].getsockname()[1]
    parsed = urlparse(url)
    return parsed._replace(netloc=f'{parsed.hostname}:{port}').geturl()


async def send(kind: str, args: list[str]) -> None:
    bridge = make_bridge(kind, args, listen=False)
    bus = EventBus(name='PyShop')

    async def forward(event: BaseEvent[Any]) -> None:
        emit_line('sent', event)
        await bridge.emit(event)

    async def place(event: OrderPlaced) -> int:
        charge = event.emit(ChargeCard(order_id=event.order_id, cents=1999))
        await charge
        return 1999

    async def charge(event: ChargeCard) -> str:
        return f'charged {event.cents} cents'

    bus.on('*', forward)
    bus.on(OrderPlaced, place)
    bus.on(ChargeCard, charge)
    order = bus.emit(
        OrderPlaced(
            order_id='ord-py-7',
            items=[LineItem(sku='ENG-1', quantity=2, options={'gift': 'yes', 'wrap': 'blue'})],
            note='ünïcode ✓',
            event_timeout=12.5,
            undeclared_extra={'kept': [1, 2.5, None]},
        )
    )
    await order
    await bus.wait_until_idle()
    if hasattr(bridge, 'close'):
        await bridge.close()
    await bus.destroy()
    ok('sent')


async def listen(kind: str, args: list[str], count: int) -> None:
    bridge = make_bridge(kind, args, listen=True)
    received: list[BaseEvent[Any]] = []
    done = asyncio.Event()

    async def handler(event: BaseEvent[Any]) -> None:
        received.append(event)
        emit_line('received', event)
        if len(received) >= count:
            done.set()

    bridge.on('*', handler)
    await bridge.start()
    if kind == 'http':
        print(f'@@ready {bound_url(bridge, args[0])}', flush=True)
    else:
        print('@@ready', flush=True)
    try:
        await asyncio.wait_for(done.wait(), timeout=60)
    except TimeoutError:
        mismatch('received', f'{len(received)} of {count} events within 60 s')
    for event in received:
        cls = TYPES.get(event.event_type)
        if cls is None:
            mismatch('typed', f'no class for {event.event_type}')
            continue
        try:
            typed = cls.model_validate(event.model_dump(mode='json'))
        except Exception as exc:  # noqa: BLE001
            mismatch(f'typed {event.event_type}', repr(exc))
            continue
        ok(f'typed {typed.event_type}')
    await bridge.close()


def main() -> None:
    mode, kind, *rest = sys.argv[1:]
    if mode == 'send':
        asyncio.run(send(kind, rest))
    elif mode == 'listen':
        asyncio.run(listen(kind, rest[:-1], int(rest[-1])))
    else:
        raise SystemExit(f'unknown mode {mode!r}')
    finish()


if __name__ == '__main__':
    main()
