"""Python bubus 1.5.6 validates the events Rust wrote, field by field.

Usage: check_rust_events.py DIR

Reads DIR/rust_events.json (entries {"class", "canonical", "python1"}), validates each
"python1" form with `BaseEvent[Any].model_validate` and with its typed class, checks every
field against the canonical form under the documented mapping (docs/wire-format.md), checks
that the canonical form itself is what 1.5.6 rejects (bus labels in `event_path`), and writes
DIR/py_roundtrip.jsonl: 1.5.6's own `model_dump_json()` of every event, plus one event it
processed on its own bus.
"""

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bubus import BaseEvent, EventBus

from events156 import AuditLogged, Customer, LineItem, OrderPlaced, ShipmentRequested

CLASSES: dict[str, type[BaseEvent[Any]]] = {
    'OrderPlaced': OrderPlaced,
    'ShipmentRequested': ShipmentRequested,
    'AuditLogged': AuditLogged,
    'BaseEvent': BaseEvent[Any],
}
# Keys 1.5.6 does not know; Rust writes them only when set, 1.5.6 keeps them as extra fields.
NEWER_CONFIG_KEYS = [
    'event_slow_timeout',
    'event_concurrency',
    'event_handler_timeout',
    'event_handler_slow_timeout',
    'event_handler_concurrency',
    'event_handler_completion',
    'event_emitted_by_handler_id',
]
DEFAULT_TIMEOUT_156 = 300.0


def micros(text: str | None) -> datetime | None:
    """A canonical 9-digit timestamp as the microsecond datetime 1.5.6 holds."""
    if text is None:
        return None
    assert text.endswith('Z') and len(text) == 30, text
    return datetime.fromisoformat(text[:26] + '+00:00').astimezone(UTC)


def bus_name(label: str) -> str:
    name, _, suffix = label.rpartition('#')
    return name if name and len(suffix) == 4 else label


def check(ctx: str, ok: bool, message: str) -> None:
    if not ok:
        raise AssertionError(f'{ctx}: {message}')


def check_event(ctx: str, event: BaseEvent[Any], canonical: dict[str, Any]) -> None:
    dump = event.model_dump(mode='json')
    check(ctx, event.event_type == canonical['event_type'], f'event_type {event.event_type}')
    check(ctx, event.event_id == canonical['event_id'], f'event_id {event.event_id}')
    check(ctx, event.event_parent_id == canonical['event_parent_id'], f'event_parent_id {event.event_parent_id}')
    check(
        ctx,
        event.event_schema.rsplit('@', 1)[1] == canonical['event_version'],
        f'event_schema {event.event_schema} vs event_version {canonical["event_version"]}',
    )
    names = [bus_name(label) for label in canonical['event_path']]
    check(ctx, event.event_path == names, f'event_path {event.event_path} vs {names}')
    check(ctx, event.event_created_at == micros(canonical['event_created_at']), f'event_created_at {event.event_created_at}')
    completed = micros(canonical['event_completed_at'])
    check(ctx, event.event_processed_at == completed, f'event_processed_at {event.event_processed_at}')
    expected_status = 'completed' if canonical['event_status'] == 'completed' else 'pending'
    check(ctx, event.event_status == expected_status, f'event_status {event.event_status}')
    expected_timeout = canonical['event_timeout'] if canonical['event_timeout'] is not None else DEFAULT_TIMEOUT_156
    check(ctx, event.event_timeout == expected_timeout, f'event_timeout {event.event_timeout}')
    for key in NEWER_CONFIG_KEYS:
        if canonical[key] is not None:
            check(ctx, dump.get(key) == canonical[key], f'{key} {dump.get(key)!r} vs {canonical[key]!r}')
    for key, value in canonical.items():
        if not key.startswith('event_'):
            check(ctx, key in dump, f'payload field {key} missing')
            check(ctx, dump[key] == value, f'payload field {key}: {dump[key]!r} vs {value!r}')


def main(directory: Path) -> None:
    entries = json.loads((directory / 'rust_events.json').read_text(encoding='utf-8'))
    assert len(entries) >= 5, len(entries)
    roundtrip: list[str] = []
    for i, entry in enumerate(entries):
        ctx = f'rust_events.json[{i}] ({entry["class"]})'
        canonical, python1 = entry['canonical'], entry['python1']

        generic = BaseEvent[Any].model_validate(python1)
        check_event(ctx + ' as BaseEvent[Any]', generic, canonical)

        cls = CLASSES[entry['class']]
        typed = cls.model_validate(python1)
        check_event(ctx + f' as {cls.__name__}', typed, canonical)
        if isinstance(typed, OrderPlaced):
            check(ctx, isinstance(typed.customer, Customer), 'customer is a model')
            check(ctx, all(isinstance(item, LineItem) for item in typed.items), 'items are models')
            check(ctx, typed.customer.address.city == 'London', 'nested model field')
            check(ctx, typed.items[0].options == {'colour': 'brass'}, 'dict field')
            check(ctx, typed.metadata['big'] == 2**62, 'big int')
        if isinstance(typed, ShipmentRequested):
            check(ctx, typed.weights == {'LHR-1': [1.25, 2.0], 'MAN-2': []}, f'weights {typed.weights}')

        # The canonical form names buses by label, which 1.5.6 refuses.
        if canonical['event_path']:
            try:
                BaseEvent[Any].model_validate(canonical)
            except ValidationError as err:
                check(ctx, 'event_path' in str(err), f'rejected for another reason: {err}')
            else:
                raise AssertionError(f'{ctx}: 1.5.6 accepted bus labels in event_path')

        roundtrip.append(typed.model_dump_json())

    # 1.5.6 processes an event Rust wrote (the pending order) on its own bus.
    pending = next(e for e in entries if e['class'] == 'OrderPlaced' and e['canonical']['event_status'] == 'pending')

    async def process() -> str:
        bus = EventBus(name='PyBus')
        bus.on('OrderPlaced', lambda event: f'py:{event.order_id}')
        event = bus.dispatch(OrderPlaced.model_validate(pending['python1']))
        await asyncio.wait_for(bus.wait_until_idle(), 10)
        result = await asyncio.wait_for(event.event_result(), 10)
        check('processed', result == f'py:{pending["canonical"]["order_id"]}', f'result {result!r}')
        await asyncio.wait_for(bus.stop(), 10)
        return event.model_dump_json()

    roundtrip.append(asyncio.run(asyncio.wait_for(process(), 30)))
    (directory / 'py_roundtrip.jsonl').write_text(''.join(line + '\n' for line in roundtrip), encoding='utf-8')
    print(f'python 1.5.6: validated {len(entries)} Rust events field by field, wrote {len(roundtrip)} back')


if __name__ == '__main__':
    main(Path(sys.argv[1]))
