"""Python abxbus 2.5 → the project's roundtrip binary → Python abxbus 2.5, field by field.

    abxbus25_roundtrip.py BINARY WORKDIR

Python builds events (every kind of result type, lineage, configuration, payload fields its
classes do not declare, completed events with results and errors) and a bus snapshot (handlers,
history, a queue with a seeded result); BINARY (`abxbus-rust-roundtrip`) decodes them and writes
them back; Python then checks that every field it wrote came back unchanged, loads the result
into its own models, checks every field again, checks that the result schemas accept and reject
the same values as the original types, and resumes the restored bus.

Prints one `@@ok <check>` line per check that held and one `@@mismatch <check>: <what>` line per
field that did not; exits 1 if any did not. Run by crates/bubus-roundtrip/tests/abxbus_peers.rs.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import NoneType
from typing import Any

from pydantic import BaseModel
from typing_extensions import TypedDict

from abxbus import BaseEvent, EventBus
from abxbus.helpers import CleanShutdownQueue
from checks import accepts, finish, mismatch, ok, short

def compare_fields(check: str, expected: dict[str, Any], actual: dict[str, Any], skip: tuple[str, ...] = ()) -> bool:
    """Every key of `expected` is in `actual` with the same value."""
    good = True
    for key, value in expected.items():
        if key in skip:
            continue
        if key not in actual:
            mismatch(check, f'`{key}` is missing')
            good = False
        elif actual[key] != value:
            mismatch(check, f'`{key}` changed: {short(value)} -> {short(actual[key])}')
            good = False
    return good


def run_binary(binary: str, mode: str, payload: Any, workdir: Path, name: str) -> Any:
    source, target = workdir / f'{name}.in.json', workdir / f'{name}.out.json'
    source.write_text(json.dumps(payload, indent=2), encoding='utf-8')
    done = subprocess.run([binary, mode, str(source), str(target)], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise SystemExit(f'{binary} {mode} failed ({done.returncode}): {done.stderr}')
    return json.loads(target.read_text(encoding='utf-8'))


# --- Events -------------------------------------------------------------------------------------


class Region(BaseModel):
    name: str
    weight: float
    shown: bool


class Invoice(BaseModel):
    number: str
    total_cents: int
    lines: list[str]
    rates: dict[str, float]
    regions: list[Region]


class Chain(BaseModel):
    label: str
    next: 'Chain | None' = None


Chain.model_rebuild()


class Profile(TypedDict):
    login: str
    admin: bool
    visits: int


@dataclass
class Sample:
    label: str
    score: float
    tags: list[str]


class CountEvent(BaseEvent[int]):
    amount: int
    note: str


class RatioEvent(BaseEvent[float]):
    label: str


class TextEvent(BaseEvent[str]):
    label: str


class FlagEvent(BaseEvent[bool]):
    label: str


class NothingEvent(BaseEvent[NoneType]):
    label: str


class TagsEvent(BaseEvent[list[str]]):
    label: str


class CountsEvent(BaseEvent[dict[str, int]]):
    label: str


class BucketsEvent(BaseEvent[dict[str, list[int]]]):
    label: str


class ProfileEvent(BaseEvent[Profile]):
    label: str


class SampleEvent(BaseEvent[Sample]):
    label: str


class InvoiceEvent(BaseEvent[Invoice]):
    customer: str
    urgent: bool


class ChainEvent(BaseEvent[Chain]):
    label: str


@dataclass
class Case:
    event: BaseEvent[Any]
    accepts: list[Any]
    rejects: list[Any]


def fresh_cases() -> list[Case]:
    root = CountEvent.model_validate(
        {
            'amount': 7,
            'note': 'root',
            'event_path': ['PyBus#a1b2'],
            'event_timeout': 12.5,
            'event_concurrency': 'parallel',
            'event_handler_completion': 'first',
            # Fields the class does not declare travel as payload.
            'undeclared': {'kept': [1, 2.5, None, {'deep': True}], 'text': 'ünïcødé'},
        }
    )

    def child(cls: type[BaseEvent[Any]], **fields: Any) -> BaseEvent[Any]:
        return cls.model_validate(
            {
                **fields,
                'event_parent_id': root.event_id,
                'event_path': ['PyBus#a1b2', 'Bridge#c3d4'],
                'event_handler_timeout': 3.0,
                'event_handler_slow_timeout': 1.5,
                'event_slow_timeout': 30.0,
                'event_handler_concurrency': 'parallel',
                'extra_marker': f'for {cls.__name__}',
            }
        )

    region = {'name': 'north', 'weight': 0.5, 'shown': True}
    invoice = {
        'number': 'INV-1',
        'total_cents': 1999,
        'lines': ['a', 'b'],
        'rates': {'vat': 0.2},
        'regions': [region],
    }
    return [
        Case(root, [0, -3, 2**40], [1.5, 'x', [], {}]),
        Case(child(RatioEvent, label='ratio'), [0.25, 3], ['x', [], {}]),
        Case(child(TextEvent, label='text'), ['', 'x'], [1, [], {}]),
        Case(child(FlagEvent, label='flag'), [True, False], ['maybe', [], {}]),
        Case(child(NothingEvent, label='nothing'), [None], [0, '', [], {}]),
        Case(child(TagsEvent, label='tags'), [[], ['a']], ['a', [1], {}]),
        Case(child(CountsEvent, label='counts'), [{}, {'a': 1}], [[], {'a': 'x'}, 1]),
        Case(child(BucketsEvent, label='buckets'), [{}, {'a': [1, 2]}], [{'a': 1}, {'a': ['x']}, []]),
        Case(
            child(ProfileEvent, label='profile'),
            [{'login': 'ada', 'admin': False, 'visits': 3}],
            [{'login': 'ada'}, {'login': 1, 'admin': False, 'visits': 3}],
        ),
        Case(
            child(SampleEvent, label='sample'),
            [{'label': 's', 'score': 0.5, 'tags': []}],
            [{'label': 's', 'score': 'high', 'tags': []}, {'label': 's'}],
        ),
        Case(
            InvoiceEvent.model_validate({'customer': 'ada', 'urgent': True, 'event_path': ['PyBus#a1b2']}),
            [invoice],
            [{**invoice, 'total_cents': 'lots'}, {**invoice, 'regions': [{'name': 1}]}],
        ),
        Case(
            ChainEvent.model_validate({'label': 'chain'}),
            [{'label': 'a', 'next': {'label': 'b', 'next': None}}],
            [{'label': 'a', 'next': {'label': 2}}, {'next': None}],
        ),
    ]


async def completed_cases() -> list[Case]:
    """Events a real bus processed: results (a value, an error), a child that blocks its parent,
    an event forwarded to a second bus."""
    first = EventBus(name='PyShop', event_handler_detect_file_paths=False)
    second = EventBus(name='PyWarehouse', event_handler_detect_file_paths=False)

    async def place(event: CountEvent) -> int:
        child = event.emit(TextEvent(label='charge'))
        await child
        return event.amount * 100

    async def audit(event: CountEvent) -> int:
        raise ValueError('audit log is full')

    async def charge(event: TextEvent) -> str:
        return f'charged for {event.label}'

    async def pick(event: TagsEvent) -> list[str]:
        return ['shelf-1', 'shelf-2']

    async def forward(event: BaseEvent[Any]) -> None:
        # (Returning the forwarded event itself makes Python 2.5.79's own dump recurse.)
        second.emit(event)

    first.on(CountEvent, place)
    first.on(CountEvent, audit)
    first.on(TextEvent, charge)
    first.on(TagsEvent, forward)
    second.on(TagsEvent, pick)

    parent = first.emit(CountEvent(amount=3, note='processed', undeclared=['x']))
    await parent
    forwarded = first.emit(TagsEvent(label='forwarded'))
    await forwarded
    await second.wait_until_idle()
    child = next(e for e in first.event_history.values() if e.event_type == 'TextEvent')
    cases = [
        Case(parent, [1], ['x']),
        Case(child, ['x'], [1]),
        Case(forwarded, [['a']], ['a']),
    ]
    await first.destroy()
    await second.destroy()
    return cases


def check_result_type(check: str, original: Any, schema: Any, case: Case) -> None:
    hydrated = BaseEvent[Any].model_validate({'event_type': 'SchemaCheck', 'event_result_type': schema}).event_result_type

    good = True
    for value in [*case.accepts, *case.rejects]:
        expected = value in case.accepts
        if accepts(original, value) != expected:
            mismatch(check, f'the original type {"rejects" if expected else "accepts"} {short(value)}')
            good = False
        if accepts(hydrated, value) != expected:
            mismatch(check, f'the schema read back {"rejects" if expected else "accepts"} {short(value)}')
            good = False
    if good:
        ok(f'{check}: result type accepts and rejects the same values')


def check_events(binary: str, workdir: Path, cases: list[Case], name: str) -> None:
    dumped = [case.event.model_dump(mode='json') for case in cases]
    back = run_binary(binary, 'events', dumped, workdir, name)
    if len(back) != len(dumped):
        mismatch(name, f'{len(dumped)} events sent, {len(back)} came back')
        return
    for case, original, returned in zip(cases, dumped, back):
        check = f'{name} {original["event_type"]}#{original["event_id"][-4:]}'
        if compare_fields(check, original, returned):
            ok(f'{check}: every field came back')
        # Python reading the binary's output must give what Python reading its own dump gives
        # (reading one event alone, Python 2.5.79 rebuilds a result's `event_children` from the
        # child events it holds: none).
        own = BaseEvent[Any].model_validate(original).model_dump(mode='json')
        reloaded = BaseEvent[Any].model_validate(returned).model_dump(mode='json')
        if compare_fields(f'{check} (reloaded in Python)', own, reloaded):
            ok(f'{check}: every field survives Python reading it back')
        if original.get('event_result_type') is not None:
            check_result_type(check, case.event.event_result_type, returned['event_result_type'], case)


def check_future_keys(binary: str, workdir: Path) -> None:
    """Keys a newer runtime may add are kept (Python 2.5 itself would refuse the event_* one)."""
    event = CountEvent(amount=1, note='future').model_dump(mode='json')
    event['event_future_option'] = {'ttl': 30, 'tags': ['a']}
    parent = fresh_cases()[0].event.model_dump(mode='json')
    back = run_binary(binary, 'events', [event, parent], workdir, 'future')
    if compare_fields('future keys', event, back[0]):
        ok('future keys: an event_* key this runtime does not know came back')


# --- Bus snapshots ------------------------------------------------------------------------------


class WorkEvent(BaseEvent[str]):
    label: str


async def check_bus(binary: str, workdir: Path) -> None:
    bus = EventBus(
        name='PyQueueBus',
        id='018f8e40-1234-7000-8000-00000000dd01',
        event_handler_detect_file_paths=False,
        event_timeout=45.0,
        max_history_size=50,
    )

    async def first(event: WorkEvent) -> str:
        return f'first:{event.label}'

    async def second(event: WorkEvent) -> str:
        return f'second:{event.label}'

    first_entry = bus.on(WorkEvent, first)
    second_entry = bus.on(WorkEvent, second)
    done = bus.emit(WorkEvent(label='done'))
    await done
    queued = [WorkEvent(label='q1', undeclared={'n': 1}), WorkEvent(label='q2')]
    seeded = queued[0].event_result_update(handler=first_entry, eventbus=bus, status='pending')
    queued[0].event_result_update(handler=second_entry, eventbus=bus, status='pending')
    seeded.update(status='completed', result='seeded')
    bus.pending_event_queue = CleanShutdownQueue[BaseEvent[Any]](maxsize=0)
    for event in queued:
        bus.event_history[event.event_id] = event
        bus.pending_event_queue.put_nowait(event)
    source = bus.model_dump()

    back = run_binary(binary, 'bus', source, workdir, 'bus')
    history = source['event_history']
    # The queued events were put straight into Python's queue, never emitted, so Python counts
    # no bus working on them; restored here, they are queued on this bus, which counts it.
    recounted = ('event_pending_bus_count',)
    if compare_fields('bus', source, back, skip=('event_history',)):
        ok('bus: configuration, handlers, handlers_by_key and queue came back')
    good = set(back.get('event_history', {})) == set(history)
    if not good:
        mismatch('bus', f'history ids changed: {sorted(history)} -> {sorted(back.get("event_history", {}))}')
    for event_id, event in history.items():
        good &= compare_fields(
            f'bus event {event_id[-4:]}', event, back['event_history'].get(event_id, {}), skip=recounted
        )
    if good:
        ok('bus: every field of every history event came back')

    restored = EventBus.validate(back)
    reloaded = restored.model_dump()
    if compare_fields('bus (reloaded in Python)', source, reloaded, skip=('event_history',)):
        ok('bus: Python restores it with the same configuration, handlers and queue')
    good = True
    for event_id, event in history.items():
        good &= compare_fields(
            f'bus event {event_id[-4:]} (reloaded)', event, reloaded['event_history'].get(event_id, {}), skip=recounted
        )
    if good:
        ok('bus: every field of every history event survives Python restoring it')

    # The restored bus resumes: the queue drains, the seeded result is kept, the others run.
    trigger = restored.emit(WorkEvent(label='trigger'))
    await asyncio.wait_for(trigger.wait(), timeout=15)
    await restored.wait_until_idle()
    one = restored.event_history[queued[0].event_id]
    two = restored.event_history[queued[1].event_id]
    states = [r.status for e in (one, two) for r in e.event_results.values()]
    if one.event_results[first_entry.id].result == 'seeded' and all(s == 'completed' for s in states):
        ok('bus: the restored queue drains, keeping the seeded result')
    else:
        mismatch('bus resume', f'statuses {states}, seeded {one.event_results[first_entry.id].result!r}')
    await restored.destroy(clear=True)
    await bus.destroy(clear=True)


async def main() -> None:
    binary, workdir = sys.argv[1], Path(sys.argv[2])
    workdir.mkdir(parents=True, exist_ok=True)
    check_events(binary, workdir, fresh_cases(), 'events')
    check_events(binary, workdir, await completed_cases(), 'completed')
    check_future_keys(binary, workdir)
    await check_bus(binary, workdir)
    finish()


if __name__ == '__main__':
    asyncio.run(main())
