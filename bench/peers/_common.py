"""Shared by the peer workload scripts (run with bench/.peers/venv's python, not the project's).

Every script prints exactly one JSON object on its last stdout line; bench/compare.py reads that line.
Latencies are milliseconds measured by the driver in the same process (time.perf_counter), throughput
is first start -> last completion as seen by the driver.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

# (instance/workflow id, ping number) -> time.perf_counter() when the workflow's code after the ping-th
# wait ran live; and -> when the workflow was about to wait for ping number n.
MARKS: dict[tuple[str, int], float] = {}
READY: dict[tuple[str, int], float] = {}

FAN_OUT_WARM_UP = 20
LATENCY_WARM_UP = 3


def proc_status_kb(field_name: str, pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field_name}")


def children(pid: int | str = "self") -> list[int]:
    """Direct children of a process (all its threads), from /proc/<pid>/task/*/children."""
    found: list[int] = []
    base = Path(f"/proc/{pid}/task")
    try:
        tasks = list(base.iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("workload", choices=["throughput", "latency", "fanout", "event"])
    p.add_argument("--n", type=int, default=10, help="instances (throughput), samples (latency), "
                   "activities (fanout), pings per instance (event)")
    p.add_argument("--instances", type=int, default=1, help="event: instances, each with --n pings")
    p.add_argument("--workdir", default=".", help="a fresh folder for this run's files")
    return p


def emit(result: dict[str, Any]) -> None:
    result.setdefault("worker_rss_peak_mb", proc_status_kb("VmHWM") / 1024)
    result.setdefault("pid", os.getpid())
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
