#!/usr/bin/env python3
"""Shows a progress bar for the local pipeline from the ESM emulators' status files, and exits once
every mapping has committed everything in its topic (lag 0 with a status newer than --since).

produced = records in the topics (high watermarks), consumed = committed by the mappings,
lag = produced - consumed. Exit 0 when caught up, 1 on timeout, 2 when a mapping died.

Usage: progress.py --status FILE [--status FILE ...] [--since EPOCH_SECONDS] [--timeout SECONDS]
                   [--pid PID ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import sys
import time


def load(path: pathlib.Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def updated(status: dict) -> float:
    try:
        return dt.datetime.fromisoformat(status["updatedAt"].replace("Z", "+00:00")).timestamp()
    except (KeyError, ValueError):
        return 0.0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def bar(fraction: float, width: int = 30) -> str:
    filled = int(round(max(0.0, min(1.0, fraction)) * width))
    return "#" * filled + "." * (width - filled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--status", type=pathlib.Path, action="append", required=True)
    parser.add_argument("--since", type=float, default=0.0)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--pid", type=int, action="append", default=[])
    args = parser.parse_args()

    tty = sys.stderr.isatty()
    started = time.monotonic()
    last_print = 0.0
    while True:
        statuses = [load(path) for path in args.status]
        produced = consumed = 0
        parts, errors = [], 0
        for path, status in zip(args.status, statuses):
            if status is None:
                parts.append(f"{path.stem}: starting")
                continue
            high = sum(p["highWatermark"] for p in status["partitions"])
            lag = status["totalLag"]
            produced += high
            consumed += high - lag
            errors += status["counters"]["functionErrors"]
            parts.append(f"{status['topic']} {high - lag}/{high}")
        lag = produced - consumed
        fraction = consumed / produced if produced else 0.0
        line = (f"[{bar(fraction)}] produced {produced} | consumed {consumed} | lag {lag}"
                f" | function errors {errors} | " + ", ".join(parts))
        now = time.monotonic()
        if tty:
            print("\r" + line[:200].ljust(200), end="", file=sys.stderr, flush=True)
        elif now - last_print >= 5:
            print(line, file=sys.stderr, flush=True)
            last_print = now
        fresh = all(s is not None and updated(s) >= args.since for s in statuses)
        if fresh and produced > 0 and lag == 0:
            if tty:
                print(file=sys.stderr)
            print(line, file=sys.stderr, flush=True)
            return
        dead = [pid for pid in args.pid if not alive(pid)]
        if dead:
            print(f"\n[progress] ERROR: ESM emulator process(es) {dead} exited early; see .local/logs/esm-*.log", file=sys.stderr)
            sys.exit(2)
        if now - started > args.timeout:
            print(f"\n[progress] ERROR: not caught up after {args.timeout:.0f}s (lag {lag}); see .local/logs/", file=sys.stderr)
            sys.exit(1)
        time.sleep(0.5)


if __name__ == "__main__":
    main()
