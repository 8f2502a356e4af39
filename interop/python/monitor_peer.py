"""A Python abxbus process for the monitor's cross-runtime test (crates/bubus-monitor/tests/peers.rs).

A bus `PyShop` with Python's `WALEventBusMiddleware` writing to the log named on the command line.
Each stdin line `order N` (or `order N fail`) emits a `PyOrder`; its `place` handler emits and
awaits a `PyCharge` child; `audit` raises `ValueError` for orders marked `fail`. Once the order
completed (and so was logged) it prints `completed EVENT_ID CHILD_ID`.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from abxbus import BaseEvent, EventBus
from abxbus.middlewares import WALEventBusMiddleware


class PyOrder(BaseEvent[int]):
    order_id: int
    fail: bool = False


class PyCharge(BaseEvent[str]):
    order_id: int


async def main(log: Path) -> None:
    bus = EventBus(name='PyShop', middlewares=[WALEventBusMiddleware(log)])
    children: dict[str, str] = {}

    async def place(event: PyOrder) -> int:
        charge = event.emit(PyCharge(order_id=event.order_id))
        children[event.event_id] = charge.event_id
        await charge
        return event.order_id * 100

    async def audit(event: PyOrder) -> None:
        if event.fail:
            raise ValueError('ledger is read-only')

    async def charge(event: PyCharge) -> str:
        return f'charged order {event.order_id}'

    bus.on(PyOrder, place)
    bus.on(PyOrder, audit)
    bus.on(PyCharge, charge)

    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        words = line.split()
        if len(words) >= 2 and words[0] == 'order':
            order = bus.emit(PyOrder(order_id=int(words[1]), fail='fail' in words[2:]))
            await order
            await bus.wait_until_idle()
            print(f'completed {order.event_id} {children.get(order.event_id, "")}', flush=True)
    await bus.destroy()


if __name__ == '__main__':
    asyncio.run(main(Path(sys.argv[1])))
