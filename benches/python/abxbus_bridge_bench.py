"""The family's Python bridge (abxbus 2.5.79) measured like benches/src/bin/bridge_engines.rs:

    abxbus_bridge_bench.py redis|nats|postgres <name> receive <n>   prints @@ready, then @@result
    abxbus_bridge_bench.py redis|nats|postgres <name> send <n>      n emits, each awaited

(postgres: table and NOTIFY channel <name> in database `test` on 127.0.0.1:5432),

and like benches/src/bin/bridge_jsonl_socket.rs, where <name> is the file or socket path and an
optional last argument the JSONL poll interval in milliseconds (default 1):

    abxbus_bridge_bench.py jsonl|socket <path> receive|send <n> [poll_ms]
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from abxbus import BaseEvent


class BenchPing(BaseEvent[None]):
    sent_ns: int
    seq: int


def bridge(engine: str, name: str, poll_ms: float) -> Any:
    if engine == 'redis':
        from abxbus.bridge_redis import RedisEventBridge

        return RedisEventBridge(f'redis://127.0.0.1:6379/0/{name}')
    if engine == 'postgres':
        from abxbus.bridge_postgres import PostgresEventBridge

        return PostgresEventBridge(f'postgresql://postgres@127.0.0.1:5432/test/{name}', channel=name)
    if engine == 'jsonl':
        from abxbus.bridge_jsonl import JSONLEventBridge

        return JSONLEventBridge(name, poll_interval=poll_ms / 1000.0)
    if engine == 'socket':
        from abxbus.bridges import SocketEventBridge

        return SocketEventBridge(name)
    from abxbus.bridge_nats import NATSEventBridge

    return NATSEventBridge('nats://127.0.0.1:4222', name)


async def receive(b: Any, n: int) -> None:
    lat: list[int] = []
    first = [0]
    last = [0]
    done = asyncio.Event()

    def on(event: BaseEvent[Any]) -> None:
        now = time.time_ns()
        sent = int(getattr(event, 'sent_ns', 0))
        if not first[0] or sent < first[0]:
            first[0] = sent
        last[0] = now
        lat.append(now - sent)
        if len(lat) >= n:
            done.set()

    b.on('BenchPing', on)
    await b.start()
    print('@@ready', flush=True)
    try:
        await asyncio.wait_for(done.wait(), timeout=120)
    except asyncio.TimeoutError:
        pass
    lat.sort()
    pick = (lambda q: lat[min(int(len(lat) * q), len(lat) - 1)]) if lat else (lambda q: 0)
    print(f'@@result {len(lat)} {last[0] - first[0]} {pick(0.5)} {pick(0.99)}', flush=True)
    await b.close()


async def send(b: Any, n: int) -> None:
    # A socket bridge's start() binds the path the receiver listens on: a sender only connects.
    if not hasattr(b, 'send_to'):
        await b.start()
    for i in range(n):
        await b.emit(BenchPing(sent_ns=time.time_ns(), seq=i))
    await b.close()


def main() -> None:
    engine, name, action, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    poll_ms = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
    b = bridge(engine, name, poll_ms)
    asyncio.run(receive(b, n) if action == 'receive' else send(b, n))


if __name__ == '__main__':
    main()
