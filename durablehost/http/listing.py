"""The list of an app's functions, as the ``durablehost start`` banner and ``durablehost start --list``
print it: HTTP functions with their methods and URL, durable functions with their trigger, timer and queue
functions with their schedule or queue, and every function durablehost cannot serve marked NOT SERVED with
the reason.

``--list`` opens nothing: no port, no store, no queue account (a queue function it lists as served can
still turn out unreachable at start; the banner then says so). It reads local.settings.json, host.json and
the app exactly as ``start`` does, and exits 0 (2 for bad settings or host.json, 3 for an app that does not
load).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from durablehost.errors import AppLoadError
from durablehost.functions import FunctionIndex, load_app
from durablehost.http.appconfig import ConfigError, apply_settings, read_host_json, read_local_settings
from durablehost.http.triggers import TriggerTable
from durablehost.triggers.plan import NotServed, TriggerEntry, plan_triggers


def function_lines(
    index: FunctionIndex, table: TriggerTable, public_url: str, entries: Mapping[str, TriggerEntry]
) -> list[str]:
    """One ``name: …`` line per function, in registration order."""
    http = {fn.name: fn for fn in index.http}
    lines = []
    for info in index.functions:
        fn = http.get(info.name)
        entry = entries.get(info.name)
        disabled = f" (disabled by {info.disabled_by})" if info.disabled_by else ""
        if fn is not None:
            methods = ",".join(fn.methods) if fn.methods else "ALL"
            lines.append(f"{info.name}: [{methods}] {public_url}{table.url_path(fn)}{disabled}")
        elif isinstance(entry, NotServed) and entry.disabled:
            lines.append(f"{info.name}: {info.trigger_type}, {entry.describe()}")  # it names the setting
        elif entry is not None:
            lines.append(f"{info.name}: {info.trigger_type}, {entry.describe()}{disabled}")
        else:
            lines.append(f"{info.name}: {info.trigger_type}{disabled}")
    return lines


def list_functions(app_dir: Path, out: TextIO, err: TextIO) -> int:
    """``durablehost start --list``; returns the exit code of ``start`` (errors go to ``err``)."""
    if not app_dir.is_dir():
        print(f"error: the app folder {app_dir} does not exist", file=err)
        return 3
    try:
        local = read_local_settings(app_dir)
        apply_settings(local.values, os.environ)
        config = read_host_json(app_dir)
    except ConfigError as exc:
        print(f"error: {exc}", file=err)
        return 2
    try:
        index = load_app(app_dir)
        table = TriggerTable(index.http, config.route_prefix)
    except (AppLoadError, ValueError) as exc:
        print(f"error: cannot load the app: {exc}", file=err)
        return 3
    entries = plan_triggers(index.functions, os.environ, config.queues)
    print(f"App: {index.app_dir} ({index.source})", file=out)
    print("Functions (served unless marked NOT SERVED):", file=out)
    for line in function_lines(index, table, "", entries):
        print(f"    {line}", file=out)
    return 0
