"""The family's own bridge figure, measured here: abxbus 2.5's per-event latency over 1 000
sequential events, as upstream's `tests/test_cross_runtime_roundtrip.py` measures it (a sender and
a listener bridge in one process, a 1 ms poll interval for polling bridges, 5 warm-up events, then
the time from the first emit until the listener saw all 1 000, divided by 1 000).

    abxbus25_bridge_latency.py sqlite DIR
    abxbus25_bridge_latency.py http PORT

For HTTP, PORT 0 binds a free port (the listener starts first and the sender is pointed at the
port it bound, so nothing can take the port in between). Prints one JSON line: {"kind": ..., "ms_per_event": ...}. Used by benches/src/bin/bridge_sqlite_http.rs.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any
from urllib.parse import urlparse

from abxbus import BaseEvent
from abxbus.bridges import HTTPEventBridge, SQLiteEventBridge


class IPCPingEvent(BaseEvent[Any]):
    label: str


def bound_url(bridge: Any, url: str) -> str:
    """`url` with the port the started HTTP bridge's server is bound to (abxbus 2.5.79 keeps its
    `asyncio` server in `_server`)."""
    sockets = getattr(getattr(bridge, '_server', None), 'sockets', None)
    if not sockets:
        raise SystemExit('the HTTP bridge has no listening socket to read its port from')
    parsed = urlparse(url)
    return parsed._replace(netloc=f'{parsed.hostname}:{sockets[0].getsockname()[1]}').geturl()


async def bridges(kind: str, arg: str) -> tuple[Any, Any]:
    """The sender and the receiver, the receiver started."""
    if kind == 'sqlite':
        path = f'{arg}/family-latency.sqlite3'
        receiver = SQLiteEventBridge(path, 'abxbus_events', poll_interval=0.001)
        await receiver.start()
        return SQLiteEventBridge(path, 'abxbus_events', poll_interval=0.001), receiver
    if kind == 'http':
        url = f'http://127.0.0.1:{arg}/events'
        receiver = HTTPEventBridge(listen_on=url)
        await receiver.start()
        return HTTPEventBridge(send_to=bound_url(receiver, url)), receiver
    raise SystemExit(f'unknown kind {kind!r}')


async def main(kind: str, arg: str) -> None:
    sender, receiver = await bridges(kind, arg)
    warmup, measured = 5, 1000
    seen = {'warmup': 0, 'measured': 0}
    warm_done, done = asyncio.Event(), asyncio.Event()

    async def on_event(event: BaseEvent[Any]) -> None:
        label = getattr(event, 'label', '')
        if label.startswith('warmup_'):
            seen['warmup'] += 1
            if seen['warmup'] >= warmup:
                warm_done.set()
        elif label.startswith('measured_'):
            seen['measured'] += 1
            if seen['measured'] >= measured:
                done.set()

    if hasattr(sender, 'start'):
        await sender.start()
    receiver.on('IPCPingEvent', on_event)
    await asyncio.sleep(0.1)
    for i in range(warmup):
        await sender.emit(IPCPingEvent(label=f'warmup_{i}'))
    await asyncio.wait_for(warm_done.wait(), timeout=60)
    start = time.perf_counter_ns()
    for i in range(measured):
        await sender.emit(IPCPingEvent(label=f'measured_{i}'))
    await asyncio.wait_for(done.wait(), timeout=600)
    elapsed_ms = (time.perf_counter_ns() - start) / 1e6
    await sender.close()
    await receiver.close()
    print(json.dumps({'kind': kind, 'ms_per_event': elapsed_ms / measured}), flush=True)


if __name__ == '__main__':
    asyncio.run(main(sys.argv[1], sys.argv[2]))
