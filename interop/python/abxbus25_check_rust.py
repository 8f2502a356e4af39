"""Python abxbus 2.5 reads what Rust wrote, field by field.

    abxbus25_check_rust.py DIR

DIR holds what crates/bubus/tests/interop_abxbus.rs wrote: `events.json` (events with their
results, and one never dispatched), `snapshot.json` (a bus with history and a queue) and
`wal.jsonl` (a bus's write-ahead log). Each is loaded into Python's own models and dumped again;
every field Rust wrote must say the same in Python's dump. Where Python rewrites a field by design
the check says how it compares instead:

* `event_result_type`: Python rebuilds a schema into a type and dumps that type's schema (without
  `title` or `format`); the rebuilt type must accept every value the event's handlers returned.
* `event_pending_bus_count`: each runtime counts its own buses.
* a result's `error`: Python keeps the message; the type name becomes Python's exception type.
* a result's `event_children`: Python rebuilds it from the child events it holds.
* `event_results: {}`: Python leaves an empty map out of its dump.

Prints `@@ok <check>` per check that held, `@@mismatch <check>: <what>` per field that did not,
and exits 1 if any did not.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from abxbus import BaseEvent, EventBus
from checks import accepts, finish, mismatch, ok, short

class LineItem(BaseModel):
    sku: str
    quantity: int


class OrderPlaced(BaseEvent[int]):
    order_id: str
    items: list[LineItem]
    note: str | None


class ChargeCard(BaseEvent[str]):
    order_id: str
    cents: int


class PickItems(BaseEvent[list[str]]):
    skus: list[str]


TYPED = {cls.__name__: cls for cls in (OrderPlaced, ChargeCard, PickItems)}


def compare_result(check: str, expected: dict[str, Any], actual: dict[str, Any]) -> bool:
    good = True
    for key, value in expected.items():
        got = actual.get(key, '<missing>')
        if key == 'error' and isinstance(value, dict):
            if not isinstance(got, dict) or got.get('message') != value.get('message'):
                mismatch(check, f'error changed: {short(value)} -> {short(got)}')
                good = False
        elif key == 'event_children':
            continue
        elif got != value:
            mismatch(check, f'`{key}` changed: {short(value)} -> {short(got)}')
            good = False
    return good


def compare_event(check: str, rust: dict[str, Any], event: BaseEvent[Any]) -> bool:
    python = event.model_dump(mode='json')
    good = True
    for key, value in rust.items():
        if key == 'event_pending_bus_count':
            continue
        if key == 'event_results' and value == {} and key not in python:
            continue
        if key not in python:
            mismatch(check, f'`{key}` is missing')
            good = False
        elif key == 'event_result_type':
            if (value is None) != (python[key] is None):
                mismatch(check, f'event_result_type changed: {short(value)} -> {short(python[key])}')
                good = False
            for result in (rust.get('event_results') or {}).values():
                returned = result.get('result')
                # A forwarding handler's result is the forwarded event, not a value of the type.
                forwarded = isinstance(returned, dict) and 'event_type' in returned and 'event_id' in returned
                if result.get('status') == 'completed' and returned is not None and not forwarded and not accepts(event.event_result_type, returned):
                    mismatch(check, f'the rebuilt result type rejects the result {short(returned)}')
                    good = False
        elif key == 'event_results':
            if set(python[key]) != set(value):
                mismatch(check, f'result keys changed: {sorted(value)} -> {sorted(python[key])}')
                good = False
            for handler_id, result in value.items():
                good &= compare_result(f'{check} result {handler_id[-4:]}', result, python[key].get(handler_id, {}))
        elif python[key] != value:
            mismatch(check, f'`{key}` changed: {short(value)} -> {short(python[key])}')
            good = False
    return good


def check_events(directory: Path) -> None:
    events = json.loads((directory / 'events.json').read_text(encoding='utf-8'))
    for rust in events:
        check = f'events: {rust["event_type"]}#{rust["event_id"][-4:]}'
        if compare_event(check, rust, BaseEvent[Any].model_validate(rust)):
            ok(f'{check} every field')
        # Rust's typed events validate as Python's classes of the same name, payload intact.
        cls = TYPED.get(rust['event_type'])
        if cls is not None:
            typed = cls.model_validate(rust)
            check = f'typed: {rust["event_type"]}#{rust["event_id"][-4:]}'
            if compare_event(check, rust, typed):
                ok(f'{check} every field, as {cls.__name__}')


async def check_snapshot(directory: Path) -> None:
    snapshot = json.loads((directory / 'snapshot.json').read_text(encoding='utf-8'))
    bus = EventBus.validate(snapshot)
    dumped = bus.model_dump()
    good = True
    for key, value in snapshot.items():
        if key == 'event_history':
            if set(dumped[key]) != set(value):
                mismatch('snapshot', f'history ids changed: {sorted(value)} -> {sorted(dumped[key])}')
                good = False
            for event_id, event in value.items():
                good &= compare_event(f'snapshot event {event_id[-4:]}', event, bus.event_history[event_id])
        elif key not in dumped:
            mismatch('snapshot', f'`{key}` is missing')
            good = False
        elif key == 'handlers':
            for handler_id, handler in value.items():
                for field, v in handler.items():
                    if dumped[key].get(handler_id, {}).get(field) != v:
                        mismatch('snapshot', f'handlers.{handler_id[-4:]}.{field} changed: {short(v)}')
                        good = False
        elif dumped[key] != value:
            mismatch('snapshot', f'`{key}` changed: {short(value)} -> {short(dumped[key])}')
            good = False
    if good:
        ok('snapshot: every field')

    # Python resumes the queue Rust left (its handlers are placeholders here).
    queued = list(snapshot['pending_event_queue'])
    trigger = bus.emit(ChargeCard(order_id='trigger', cents=0))
    await asyncio.wait_for(trigger.wait(), timeout=15)
    await bus.wait_until_idle()
    statuses = [bus.event_history[event_id].event_status for event_id in queued]
    if queued and all(status == 'completed' for status in statuses):
        ok('snapshot: the restored queue drains in Python')
    else:
        mismatch('snapshot resume', f'queued events ended {statuses}')
    await bus.destroy(clear=True)


def check_wal(directory: Path) -> None:
    lines = (directory / 'wal.jsonl').read_text(encoding='utf-8').splitlines()
    good = bool(lines)
    for number, line in enumerate(lines, start=1):
        rust = json.loads(line)
        check = f'wal: line {number} ({rust["event_type"]}, {rust["event_status"]})'
        if compare_event(check, rust, BaseEvent[Any].model_validate(rust)):
            ok(check)
        else:
            good = False
    if good:
        ok(f'wal: every line ({len(lines)})')


async def main() -> None:
    directory = Path(sys.argv[1])
    check_events(directory)
    await check_snapshot(directory)
    check_wal(directory)
    finish()


if __name__ == '__main__':
    asyncio.run(main())
