#!/usr/bin/env python3
"""Inputs for measuring the `bubus` CLI's peak memory (see docs/performance.md, "CLI memory").

    cli-memory-inputs.py big-result OUT [BYTES]   one completed event whose result is an array of
                                                  small integers, BYTES long (default 16 000 000),
                                                  with an `event_result_type` that checks every item
    cli-memory-inputs.py log OUT [EVENTS]         EVENTS completed events (default 200 000), each
                                                  with a payload, one result and a parent among the
                                                  events before it (a tree ten roots wide at most)

Nothing random: the same arguments write the same bytes.
"""
import json
import sys


def event_id(n):
    return f"018f8e40-0000-7000-8000-{n:012x}"


def stamp(ms):
    s, ms = divmod(ms, 1000)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return f"2026-01-01T{h % 24:02d}:{m:02d}:{s:02d}.{ms:03d}000000Z"


def result(n, value, start_ms):
    return {
        "id": f"018f8e40-0000-7000-9000-{n:012x}",
        "status": "completed",
        "handler_id": "h1",
        "handler_name": "app::reports::build",
        "eventbus_id": "018f8e40-0000-7000-a000-000000000001",
        "eventbus_name": "Reports",
        "started_at": stamp(start_ms),
        "completed_at": stamp(start_ms + 1),
        "result": value,
        "error": None,
        "event_children": [],
    }


def big_result(out, size):
    items, length = [], 2
    i = 0
    while length < size:
        item = str(i % 1000)
        items.append(item)
        length += len(item) + 1
        i += 1
    event = {
        "event_type": "Report",
        "event_id": event_id(1),
        "event_status": "completed",
        "event_created_at": stamp(0),
        "event_completed_at": stamp(2),
        "event_result_type": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "event_results": {"h1": result(1, "RESULT", 0)},
    }
    line = json.dumps(event, separators=(",", ":")).replace('"RESULT"', "[" + ",".join(items) + "]")
    out.write(line + "\n")


def log(out, count):
    for n in range(count):
        parent = None if n % 20000 < 10 else event_id(1 + (n * 7919) % n)
        event = {
            "event_type": "Report",
            "event_id": event_id(1 + n),
            "event_parent_id": parent,
            "event_path": ["Reports#0001"],
            "event_status": "completed",
            "event_created_at": stamp(n),
            "event_started_at": stamp(n),
            "event_completed_at": stamp(n + 2),
            "title": f"report {n}",
            "body": "lorem ipsum dolor sit amet " * 3,
            "event_results": {"h1": result(1 + n, f"built {n}", n)},
        }
        out.write(json.dumps(event, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    kind, path = sys.argv[1], sys.argv[2]
    with open(path, "w") as out:
        if kind == "big-result":
            big_result(out, int(sys.argv[3]) if len(sys.argv) > 3 else 16_000_000)
        elif kind == "log":
            log(out, int(sys.argv[3]) if len(sys.argv) > 3 else 200_000)
        else:
            sys.exit(__doc__)
