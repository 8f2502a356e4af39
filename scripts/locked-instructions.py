#!/usr/bin/env python3
"""Counts the locked instructions (`lock`-prefixed, and `xchg` with memory) a program executed,
per function, from a callgrind profile taken with `--dump-instr=yes`. See docs/performance.md.

    valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file=cg.out \\
        ./target/release/bubus-benches --scenario 50k-events --in-process --no-warmup \\
        --runs 1 --runtime current
    scripts/locked-instructions.py cg.out 50000          # per event (S1 + its floor)
"""
import collections
import re
import subprocess
import sys


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    profile = sys.argv[1]
    per = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    names = {"ob": {}, "fn": {}, "fl": {}}

    def name(kind: str, text: str):
        m = re.match(r"\((\d+)\)(?: (.*))?", text)
        if not m:
            return text
        if m.group(2) is not None:
            names[kind][m.group(1)] = m.group(2)
        return names[kind].get(m.group(1))

    counts = collections.Counter()  # (object, function, address) -> executions
    obj = fn = None
    addr = 0
    skip_next = False
    with open(profile) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            key = line.split("=", 1)[0]
            if key == "ob":
                obj = name("ob", line[3:])
            elif key == "fn":
                fn = name("fn", line[3:])
            elif key in ("cob", "cfn", "cfi", "cfl"):
                name({"cob": "ob", "cfn": "fn"}.get(key, "fl"), line[4:])
            elif key in ("fl", "fi", "fe"):
                name("fl", line[3:])
            elif key == "calls":
                skip_next = True  # the next line is the call's inclusive cost
            elif line[0] in "+-*0123456789":
                parts = line.split()
                a = parts[0]
                if a.startswith("+"):
                    addr += int(a[1:], 0)
                elif a.startswith("-"):
                    addr -= int(a[1:], 0)
                elif a != "*":
                    addr = int(a, 16)
                if skip_next:
                    skip_next = False
                elif len(parts) >= 3:
                    counts[(obj, fn, addr)] += int(parts[2])

    locked = {}
    for o in {k[0] for k in counts}:
        if not o or not o.startswith("/"):
            continue
        out = subprocess.run(
            ["objdump", "-d", "--no-show-raw-insn", o], capture_output=True, text=True
        ).stdout
        found = set()
        for l in out.splitlines():
            m = re.match(r"\s*([0-9a-f]+):\s+(.*)", l)
            if m and (m.group(2).startswith("lock ") or (m.group(2).startswith("xchg") and "(" in m.group(2))):
                found.add(int(m.group(1), 16))
        locked[o] = found

    by_fn = collections.Counter()
    for (o, f, a), n in counts.items():
        if a in locked.get(o, ()):
            by_fn[f] += n
    print(f"locked instructions: {sum(by_fn.values()) / per:.2f} per unit")
    for f, n in by_fn.most_common(40):
        print(f"{n / per:8.2f}  {f}")


if __name__ == "__main__":
    main()
