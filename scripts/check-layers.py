#!/usr/bin/env python3
"""Checks that the core crate's modules import only their own layer or the layers below.

The layers of `crates/bubus/src`, lowest first (a module may name its own layer and any below):

  0 primitives   time, lock, memo, context         (context: the user's context values; the
                                                   handler context is the engine's)
  1 errors       error                             (the leaf errors the model returns)
  2 model        event, handler, result            (the event data model)
  3 wire         wire                              (every JSON shape of the model)
  4 services     tree, memory, private             (private: what the derive expands to)
  5 engine       bus, middleware                   (the engine and the hooks it calls)
  6 extensions   retry, wal, bridge, umbrella      (umbrella: the root Error, which wraps all)

An import that points up a layer is what makes an import cycle between layers. The ones that
exist today are listed, file by file, in scripts/layers-baseline.txt: the check fails on any
upward import that is not listed there (a new cycle), and on a listed one that is gone (so the
list only shrinks: run with --update to rewrite it after removing one).

Usage: scripts/check-layers.py [--update]
"""

import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(ROOT, "crates", "bubus", "src")
BASELINE = os.path.join(ROOT, "scripts", "layers-baseline.txt")

LAYERS = [
    ("primitives", ["time", "lock", "memo", "context"]),
    ("errors", ["error"]),
    ("model", ["event", "handler", "result"]),
    ("wire", ["wire"]),
    ("services", ["tree", "memory", "private"]),
    ("engine", ["bus", "middleware"]),
    ("extensions", ["retry", "wal", "bridge", "umbrella"]),
]
RANK = {module: rank for rank, (_, modules) in enumerate(LAYERS) for module in modules}

# Comments, string literals (raw ones too) and char literals, read left to right in one pass, so
# that a quote inside a comment or a `//` inside a string hides nothing after it.
NOISE = re.compile(
    r"//[^\n]*|/\*.*?\*/|\br(#*)\".*?\"\1|b?\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])'", re.S
)
CRATE_PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
# `use crate::{a, b::c}` names several top-level modules in one group.
CRATE_GROUP = re.compile(r"\bcrate::\{([^}]*)\}", re.S)


def top_module(rel):
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first


def imports(text):
    text = NOISE.sub(" ", text)
    found = set(CRATE_PATH.findall(text))
    for group in CRATE_GROUP.findall(text):
        for item in group.split(","):
            name = item.strip().split("::")[0].strip()
            if re.fullmatch(r"[a-z_][a-z0-9_]*", name):
                found.add(name)
    return found


def upward_imports():
    edges = set()
    unknown = set()
    for dirpath, _, files in os.walk(SRC):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, SRC)
            if rel == "lib.rs":
                continue  # the crate root re-exports every layer
            source = top_module(rel)
            if source not in RANK:
                unknown.add(source)
                continue
            with open(path, encoding="utf-8") as f:
                targets = imports(f.read())
            for target in targets:
                if target not in RANK:
                    unknown.add(target)
                elif RANK[target] > RANK[source]:
                    edges.add((rel.replace(os.sep, "/"), target))
    return edges, unknown


def main():
    edges, unknown = upward_imports()
    if unknown:
        print(
            "check-layers: modules with no layer (add them to LAYERS in scripts/check-layers.py): "
            + ", ".join(sorted(unknown)),
            file=sys.stderr,
        )
        return 1
    lines = [f"{src} -> {dst}" for src, dst in sorted(edges)]
    if "--update" in sys.argv:
        with open(BASELINE, "w", encoding="utf-8") as f:
            f.write("# Upward imports between the layers of crates/bubus/src that exist today\n")
            f.write("# (scripts/check-layers.py). Remove entries as the layering is mended;\n")
            f.write("# never add one.\n")
            f.write("".join(line + "\n" for line in lines))
        print(f"check-layers: {len(lines)} upward imports written to the baseline")
        return 0
    with open(BASELINE, encoding="utf-8") as f:
        known = {l.strip() for l in f if l.strip() and not l.startswith("#")}
    new = [l for l in lines if l not in known]
    gone = sorted(known - set(lines))
    for line in new:
        src, dst = line.split(" -> ")
        print(
            f"check-layers: {src} ({LAYERS[RANK[top_module(src)]][0]}) imports crate::{dst} "
            f"({LAYERS[RANK[dst]][0]}), a higher layer: a new import cycle",
            file=sys.stderr,
        )
    for line in gone:
        print(
            f"check-layers: '{line}' is gone — remove it from scripts/layers-baseline.txt "
            "(or run scripts/check-layers.py --update)",
            file=sys.stderr,
        )
    if new or gone:
        return 1
    print(f"check-layers: ok ({len(lines)} known upward imports, none new)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
