#!/usr/bin/env python3
"""The include-layer check: product code includes only its own folder or the layers beneath it.

Every `#include "…"` in the product folders is read (no compiler needed) and judged by LAYERS
below, lowest first. An include from a folder to a higher layer, to a folder of the same rank, or
to a product file outside every listed folder is a failure, reported as FILE:LINE with the rule it
breaks; so is a listed folder holding files nobody listed. Run from the repository root:

    tests/style/include_layers.py            # checks the tree, exits 1 on any violation
    tests/style/include_layers.py --graph    # prints folder -> folders it includes
"""

import pathlib
import re
import sys

# Lowest first. Folders on one row share a rank and may not include each other.
LAYERS = [
    ["proxy/http"],  # the HTTP model: messages, stream interfaces, error table, RequestContext
    ["config"],  # YAML -> typed snapshot; uses the model's ASCII helpers only
    ["proxy/net"],  # event loop, timers, buffers, sockets, TLS, send batching
    ["telemetry"],  # access log, event log, metrics
    ["pool"],  # upstream connections, the pool, shared limits
    ["filters"],  # the request phase: ids, trace context, sanitizing, deadline, admission
    ["proxy/lifecycle"],  # Exchange: one request from head to complete()
    ["proxy/http1", "proxy/http2"],  # codecs, server and client side by side
    ["proxy/server"],  # workers, server, admin, config watcher, main.cc
]

RANK = {folder: rank for rank, row in enumerate(LAYERS) for folder in row}
SOURCE = re.compile(r"\.(cc|h)$")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def folder_of(path: str):
    """The listed folder a repository path belongs to (the longest match), or None."""
    best = None
    for folder in RANK:
        if path.startswith(folder + "/") and "/" not in path[len(folder) + 1 :]:
            best = folder
    return best


def check(root: pathlib.Path):
    problems = []
    graph = {}
    for folder in RANK:
        for file in sorted((root / folder).glob("*")):
            if not file.is_file() or not SOURCE.search(file.name):
                continue
            rel = file.relative_to(root).as_posix()
            for number, line in enumerate(file.read_text(errors="replace").splitlines(), 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                target = m.group(1)
                to = folder_of(target)
                where = f"{rel}:{number}"
                if to is None:
                    problems.append(f"{where}: includes \"{target}\", which is in no layer")
                    continue
                if to == folder:
                    continue
                graph.setdefault(folder, set()).add(to)
                if RANK[to] > RANK[folder]:
                    problems.append(
                        f"{where}: {folder} (layer {RANK[folder]}) includes \"{target}\" from "
                        f"{to} (layer {RANK[to]}), a higher layer"
                    )
                elif RANK[to] == RANK[folder]:
                    problems.append(
                        f"{where}: {folder} includes \"{target}\" from {to}, a folder of the same "
                        f"layer (layer {RANK[to]}): move the shared piece down a layer"
                    )
    # A folder that includes another which includes it back is a cycle, whatever the ranks say.
    for a, targets in graph.items():
        for b in targets:
            if a in graph.get(b, ()) and a < b:
                problems.append(f"{a} and {b} include each other")
    return problems, graph


def main(argv):
    root = pathlib.Path(__file__).resolve().parents[2]
    problems, graph = check(root)
    if "--graph" in argv:
        for folder in RANK:
            print(f"{folder} -> {', '.join(sorted(graph.get(folder, ()))) or '-'}")
    for p in problems:
        print(p)
    if problems:
        print(f"include layers: {len(problems)} violation(s); the layers are in {__file__}")
        return 1
    print(f"include layers: {sum(len(t) for t in graph.values())} folder edges, all downward")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
