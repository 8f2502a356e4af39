"""A Python abxbus process taking part in a cross-process retry semaphore, driven by the Rust
tests (crates/bubus/tests/retry_multiprocess.rs) to show that Rust and Python share one limit.

    semaphore_peer.py hold NAME LIMIT COUNT    take COUNT slots, report each, keep them until a
                                               line arrives on stdin
    semaphore_peer.py once NAME LIMIT TIMEOUT  take one slot (waiting at most TIMEOUT seconds)

Reports go to stdout as `@@acquired`, `@@releasing`, `@@done ok`, `@@done semaphore-timeout`. The slot files'
directory is abxbus's: ABXBUS_MULTIPROCESS_SEMAPHORE_DIR, read when abxbus is imported.
"""

import asyncio
import sys

from abxbus.retry import retry


def report(what: str) -> None:
    print(f'@@{what}', flush=True)


async def hold(name: str, limit: int, count: int) -> None:
    release = asyncio.Event()

    @retry(
        semaphore_limit=limit,
        semaphore_name=name,
        semaphore_scope='multiprocess',
        semaphore_lax=False,
        semaphore_timeout=60,
    )
    async def held() -> None:
        report('acquired')
        await release.wait()

    tasks = [asyncio.create_task(held()) for _ in range(count)]
    await asyncio.to_thread(sys.stdin.readline)
    report('releasing')
    release.set()
    await asyncio.gather(*tasks)
    report('done ok')


async def once(name: str, limit: int, timeout: float) -> None:
    @retry(
        semaphore_limit=limit,
        semaphore_name=name,
        semaphore_scope='multiprocess',
        semaphore_lax=False,
        semaphore_timeout=timeout,
    )
    async def take() -> None:
        report('acquired')
        report('releasing')

    try:
        await take()
    except TimeoutError:
        report('done semaphore-timeout')
    else:
        report('done ok')


def main() -> None:
    role, name, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if role == 'hold':
        asyncio.run(hold(name, limit, int(sys.argv[4])))
    elif role == 'once':
        asyncio.run(once(name, limit, float(sys.argv[4])))
    else:
        sys.exit(f'unknown role {role!r}')


if __name__ == '__main__':
    main()
