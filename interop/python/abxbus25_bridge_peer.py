"""Python abxbus 2.5 on the other side of a Rust bridge, using its own JSONL and socket bridges.

    abxbus25_bridge_peer.py listen jsonl|socket ENDPOINT EXPECTED OUT
    abxbus25_bridge_peer.py send   jsonl|socket ENDPOINT OUT

`listen`: wires `JSONLEventBridge(ENDPOINT)` or `SocketEventBridge(ENDPOINT)` to a bus the way
the family documents it (`bridge.on('*', bus.emit)`), prints `@@ready` once listening, waits for
an `IPCPingEvent` and its child `IPCChildEvent` from Rust, waits for a line on stdin (Rust has
written EXPECTED: the events can arrive before it has), and compares every field of what it
received with EXPECTED (the events as Rust sent them). Python's bridges reset each received
event's id, path, parent, emitted-by, status and timestamps (`event_reset()`, by design), so those
are checked to be reset; everything else must be equal. Writes what it received to OUT.

`send`: a bus wired with `bus.on('*', bridge.emit)` emits an `IPCPingEvent` whose handler emits
a child `IPCChildEvent` (`event.emit`, so it is linked); writes both events' dumps (as sent) to
OUT for crates/bubus/tests/bridge_interop.rs to compare with what Rust received.

Prints `@@ok <check>` per check that held, `@@mismatch <check>: <what>` per field that did not.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from abxbus import BaseEvent, EventBus
from abxbus.bridges import JSONLEventBridge, SocketEventBridge
from checks import finish, mismatch, ok, short


class Meta(BaseModel):
    tags: list[str]
    score: float
    nested: dict[str, Any]


class IPCPingEvent(BaseEvent[str]):
    label: str
    meta: Meta


class IPCChildEvent(BaseEvent[str]):
    note: str


# Reset by every abxbus 2.5.79 bridge on receipt (`event_reset()`).
RESET_ON_RECEIPT = {
    'event_id',
    'event_path',
    'event_parent_id',
    'event_emitted_by_handler_id',
    'event_blocks_parent_completion',
    'event_status',
    'event_started_at',
    'event_completed_at',
    'event_pending_bus_count',
    'event_results',
}


def bridge_for(kind: str, endpoint: str) -> Any:
    if kind == 'jsonl':
        return JSONLEventBridge(endpoint, poll_interval=0.01)
    if kind == 'socket':
        return SocketEventBridge(endpoint)
    raise SystemExit(f'unknown bridge kind {kind}')


def instant(value: Any) -> float | None:
    if value is None:
        return None
    return datetime.fromisoformat(str(value).replace('Z', '+00:00')).timestamp()


def compare(check: str, expected: dict[str, Any], received: dict[str, Any]) -> None:
    good = True
    for key in sorted(set(expected) | set(received)):
        sent = expected.get(key)
        got = received.get(key)
        if key in RESET_ON_RECEIPT:
            continue
        if key == 'event_created_at':
            if instant(sent) != instant(got):
                mismatch(check, f'{key}: sent {sent}, received {got}')
                good = False
            continue
        if key == 'event_result_type':
            # Python rebuilds a schema into a type and dumps that type's schema again.
            if (sent is None) != (got is None) or (isinstance(sent, dict) and sent.get('type') != got.get('type')):
                mismatch(check, f'{key}: sent {short(sent)}, received {short(got)}')
                good = False
            continue
        if sent != got:
            mismatch(check, f'{key}: sent {short(sent)}, received {short(got)}')
            good = False
    # What Python's bridge resets must be reset (a new id: the family cuts lineage).
    if received.get('event_id') == expected.get('event_id'):
        mismatch(check, 'event_id was expected to be replaced by Python (event_reset)')
        good = False
    if good:
        ok(check)


async def listen(kind: str, endpoint: str, expected_path: str, out_path: str) -> None:
    bus = EventBus('PyReceiver')
    bridge = bridge_for(kind, endpoint)
    received: dict[str, dict[str, Any]] = {}
    both = asyncio.Event()

    def record(event: BaseEvent[Any]) -> str:
        # Without its results: the forwarding handler's result is the event itself, which
        # Python cannot dump while it is being handled.
        bare = event.model_copy(update={'event_results': type(event.event_results)()})
        received[event.event_type] = bare.model_dump(mode='json')
        if len(received) == 2:
            both.set()
        return f'python got {event.event_type}'

    bus.on('IPCPingEvent', record)
    bus.on('IPCChildEvent', record)
    bridge.on('*', bus.emit)
    await bridge.start()
    print('@@ready', flush=True)
    await asyncio.wait_for(both.wait(), timeout=60)
    # Rust writes EXPECTED once its sends completed and then says so here; the events can get
    # here first.
    await asyncio.wait_for(asyncio.to_thread(sys.stdin.readline), timeout=60)
    with open(out_path, 'w') as f:
        json.dump(received, f, indent=1)
    with open(expected_path) as f:
        expected = json.load(f)
    for sent in expected:
        got = received.get(sent['event_type'])
        if got is None:
            mismatch(sent['event_type'], 'not received')
            continue
        compare(f"rust->python {kind} {sent['event_type']}", sent, got)
    await bridge.close()
    await bus.destroy()


async def send(kind: str, endpoint: str, out_path: str) -> None:
    bus = EventBus('PySender')
    bridge = bridge_for(kind, endpoint)
    bus.on('*', bridge.emit)
    children: list[BaseEvent[Any]] = []

    async def on_ping(event: IPCPingEvent) -> str:
        child = event.emit(IPCChildEvent(note='emitted by the python handler', event_timeout=12.5))
        children.append(child)
        await child.now()
        return 'pong from python'

    bus.on(IPCPingEvent, on_ping)
    ping = bus.emit(
        IPCPingEvent(
            label='from python',
            meta=Meta(tags=['a', 'b'], score=0.25, nested={'deep': {'list': [1, 2, {'x': None}]}, 'ok': True}),
            event_timeout=33.0,
        )
    )
    await ping.now()
    await bus.wait_until_idle()
    sent = [ping.model_dump(mode='json')] + [c.model_dump(mode='json') for c in children]
    for dump in sent:
        # The sending bus's own results: not part of what a receiver takes over.
        dump.pop('event_results', None)
    with open(out_path, 'w') as f:
        json.dump(sent, f, indent=1)
    ok(f'python->rust {kind} sent')
    await bridge.close()
    await bus.destroy()


def main() -> None:
    mode, kind, endpoint = sys.argv[1:4]
    if mode == 'listen':
        asyncio.run(listen(kind, endpoint, sys.argv[4], sys.argv[5]))
    elif mode == 'send':
        asyncio.run(send(kind, endpoint, sys.argv[4]))
    else:
        raise SystemExit(f'unknown mode {mode}')
    finish()


if __name__ == '__main__':
    main()
