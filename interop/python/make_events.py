"""Python bubus 1.5.6 writes events for the Rust side to read.

Usage: make_events.py OUT_DIR

Writes OUT_DIR/py_events.json (a JSON list of `model_dump(mode='json')` dumps: events before
dispatch, after processing, forwarded, children) and OUT_DIR/py_wal.jsonl (the lines 1.5.6's
`EventBus(wal_path=...)` appends as events are processed).
"""

import asyncio
import json
import sys
from pathlib import Path

from bubus import EventBus

from events156 import AuditLogged, OrderPlaced, ShipmentRequested, sample_order

PARENT_ID = '0190d6c5-8e3a-7c4b-9f21-3a5b7c9d1e2f'


async def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    wal = out / 'py_wal.jsonl'
    wal.unlink(missing_ok=True)

    orders = EventBus(name='OrdersBus', wal_path=wal)
    shipping = EventBus(name='ShippingBus', wal_path=wal)

    async def on_order(event: OrderPlaced) -> str:
        child = orders.dispatch(
            ShipmentRequested(
                order_id=event.order_id,
                warehouses=['LHR-1', 'MAN-2'],
                weights={'LHR-1': [1.25, 2.5], 'MAN-2': []},
                event_timeout=30.0,
            )
        )
        await child
        return f'accepted:{event.order_id}'

    def on_shipment(event: ShipmentRequested) -> dict[str, int]:
        return {name: len(event.weights[name]) for name in event.warehouses}

    orders.on('OrderPlaced', on_order)
    orders.on('ShipmentRequested', shipping.dispatch)  # forwarding: path OrdersBus -> ShippingBus
    shipping.on('ShipmentRequested', on_shipment)

    dumps: list[dict] = []

    # Before dispatch: empty path, nothing processed.
    order = sample_order()
    dumps.append(order.model_dump(mode='json'))

    # A parent id and a path set by hand, no timeout at all.
    audit = AuditLogged(
        message='order received',
        level=30,
        event_parent_id=PARENT_ID,
        event_path=['UpstreamBus'],
        event_timeout=None,
    )
    dumps.append(audit.model_dump(mode='json'))

    orders.dispatch(order)
    orders.dispatch(audit)
    await asyncio.wait_for(orders.wait_until_idle(), 10)
    await asyncio.wait_for(shipping.wait_until_idle(), 10)

    # After processing: paths, the child with its parent id, processed timestamps.
    dumps.append(order.model_dump(mode='json'))
    children = [e for e in orders.event_history.values() if e.event_type == 'ShipmentRequested']
    assert len(children) == 1, children
    assert children[0].event_parent_id == order.event_id
    dumps.append(children[0].model_dump(mode='json'))
    dumps.append(audit.model_dump(mode='json'))

    await asyncio.wait_for(orders.stop(), 10)
    await asyncio.wait_for(shipping.stop(), 10)

    (out / 'py_events.json').write_text(json.dumps(dumps, indent=2, ensure_ascii=False) + '\n', encoding='utf-8')
    lines = wal.read_text(encoding='utf-8').splitlines()
    assert len(lines) >= 3, lines
    print(f'python 1.5.6: wrote {len(dumps)} events and {len(lines)} WAL lines to {out}')


if __name__ == '__main__':
    asyncio.run(asyncio.wait_for(main(Path(sys.argv[1])), 30))
