#!/usr/bin/env python3
"""S1-S5 of two builds of bubus, interleaved in one sitting: the before/after table of a change.

    scripts/bench-before-after.py <before-rev> [<after-rev>] [--rounds N] [--runtime current|multi|both]

Each revision is exported with `git archive` (the working tree is left alone; a revision of
`WORKTREE` means this working tree as it is) and its `bubus-benches` built in release mode in
its own target directory under target/before-after/ (a path to an already built
`bubus-benches` binary may stand for a revision: it is run as it is). Then, for every round, every scenario
runs once per build and per runtime, each run in its own process (`--scenario <id> --runs 1
--json`), the two builds' order alternating from round to round. Prints, per runtime, the median
µs per event (per handler for S3) and peak RSS per event of each build and after/before.
A run that fails (a wrong checksum, a hang) is reported and makes the exit status 1.

Wall time on a shared machine moves by tens of per cent; compare builds only within one run of
this script, and use instruction counts (docs/performance.md, "Profiles") for small changes.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENARIOS = [
    ("50k-events", "S1"),
    ("500-buses-x-100-events", "S2"),
    ("1-event-x-50k-parallel-handlers", "S3"),
    ("50k-one-off-handlers", "S4"),
    ("worst-case-forwarding-timeouts", "S5"),
]


def build(rev: str) -> str:
    """Builds bubus-benches at `rev` and returns the binary's path."""
    if os.path.isfile(rev) and os.access(rev, os.X_OK):
        return os.path.abspath(rev)
    base = os.path.join(ROOT, "target", "before-after")
    os.makedirs(base, exist_ok=True)
    if rev == "WORKTREE":
        src = ROOT
        target = os.path.join(ROOT, "target")
    else:
        sha = subprocess.check_output(["git", "-C", ROOT, "rev-parse", rev], text=True).strip()
        src = os.path.join(base, "src-" + sha[:12])
        if not os.path.isdir(src):
            with tempfile.TemporaryDirectory(dir=base) as tmp:
                archive = os.path.join(tmp, "src.tar")
                subprocess.check_call(["git", "-C", ROOT, "archive", "-o", archive, sha])
                staging = os.path.join(tmp, "src")
                with tarfile.open(archive) as tar:
                    tar.extractall(staging, filter="data")
                os.rename(staging, src)
        target = os.path.join(base, "target-" + sha[:12])
    print(f"[before-after] building {rev} in {src}", file=sys.stderr)
    subprocess.check_call(
        ["cargo", "build", "--release", "-p", "bubus-benches", "--bin", "bubus-benches"],
        cwd=src,
        env={**os.environ, "CARGO_TARGET_DIR": target},
    )
    return os.path.join(target, "release", "bubus-benches")


def run(binary: str, scenario: str, runtime: str) -> dict:
    """One run of one scenario; its JSON line, or a failure record."""
    proc = subprocess.run(
        [binary, "--scenario", scenario, "--runs", "1", "--json", "--runtime", runtime],
        capture_output=True,
        text=True,
    )
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if not lines:
        return {"ok": False, "error": f"no result (exit {proc.returncode}): {proc.stderr[-300:]}"}
    return json.loads(lines[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after", nargs="?", default="WORKTREE")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runtime", choices=["current", "multi", "both"], default="both")
    args = parser.parse_args()
    runtimes = ["current", "multi"] if args.runtime == "both" else [args.runtime]
    builds = {"before": build(args.before), "after": build(args.after)}

    times = {}
    rss = {}
    failures = []
    for round_ in range(args.rounds):
        order = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
        for scenario, short in SCENARIOS:
            for runtime in runtimes:
                for name in order:
                    result = run(builds[name], scenario, runtime)
                    key = (short, runtime, name)
                    if result.get("ok"):
                        us = result["ms_per_event"] * 1000.0
                        times.setdefault(key, []).append(us)
                        if result.get("peak_rss_kb_per_event") is not None:
                            rss.setdefault(key, []).append(result["peak_rss_kb_per_event"])
                        print(f"[before-after] round {round_ + 1} {short} {runtime} {name}: "
                              f"{us:.4f} µs", file=sys.stderr)
                    else:
                        failures.append((round_ + 1, short, runtime, name, result.get("error")))
                        print(f"[before-after] round {round_ + 1} {short} {runtime} {name}: "
                              f"FAILED {result.get('error')}", file=sys.stderr)

    def med(table, key):
        values = table.get(key)
        return statistics.median(values) if values else None

    for runtime in runtimes:
        print(f"\nS1-S5, {args.before} → {args.after}, {runtime}-thread runtime, "
              f"median of {args.rounds} interleaved rounds\n")
        print("| scenario | before (µs) | after (µs) | after ÷ before | "
              "peak RSS before (kb) | peak RSS after (kb) |")
        print("| --- | --- | --- | --- | --- | --- |")
        for _, short in SCENARIOS:
            b = med(times, (short, runtime, "before"))
            a = med(times, (short, runtime, "after"))
            rb = med(rss, (short, runtime, "before"))
            ra = med(rss, (short, runtime, "after"))
            fmt = lambda v, d=3: "failed" if v is None else f"{v:.{d}f}"
            ratio = f"{a / b:.2f}×" if a is not None and b else "–"
            print(f"| {short} | {fmt(b)} | {fmt(a)} | {ratio} | {fmt(rb)} | {fmt(ra)} |")
    for failure in failures:
        print("failed: round %d %s %s %s: %s" % failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
