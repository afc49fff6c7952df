"""The ``durablehost`` command: ``start`` a host for an app, and manage instances of a running one.

    durablehost start [--app-dir DIR] [--port 7071] [--host 127.0.0.1] [--store STORE] [--task-hub NAME]
                      [--fidelity durablehost|azure]
    durablehost status ID | list [--status S ...] [--prefix P] | raise ID EVENT [JSON] [--idempotency-key K]
    durablehost terminate|suspend|resume ID [--reason R] | purge ID | history ID    [--url URL] [--key KEY]
    durablehost export ID [-o FILE] [--url URL]      the history as a replayable JSON document
    durablehost replay-check [--app-dir DIR] FILE_OR_DIR...   replay exported histories on the current code

Exit codes of ``start``: 0 stopped cleanly, 2 bad arguments/settings/store/keys, 3 the app cannot be
loaded, 4 the port cannot be bound, 5 the store cannot be opened. Management commands: 0 ok, 1 the host
refused (not found, finished …), 2 bad arguments, 3 no host reachable at ``--url``. ``replay-check``
(no host needed, no activity runs): 0 every history replays, 1 some do not (the report says where and
why), 2 a file is missing or not an export, 3 the app cannot be loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from durablehost.engine.fidelity import Fidelity
from durablehost.errors import AppLoadError, InvalidRequest
from durablehost.functions import load_app
from durablehost.http import payloads
from durablehost.http.appconfig import ConfigError, apply_settings, read_local_settings
from durablehost.http.client import DEFAULT_URL, ClientError, ManagementClient
from durablehost.http.common import DEFAULT_MAX_BODY
from durablehost.http.keys import MASTER_KEY_SETTING
from durablehost.http.listing import list_functions
from durablehost.http.serve import EXIT_CONFIG, StartOptions, StartupError, run
from durablehost.http.supervisor import role_from_environment, supervise
from durablehost.replay import HistoryDocumentError, check_paths

MAX_WORKERS = 64

STATUSES = (
    "Pending",
    "Running",
    "Completed",
    "ContinuedAsNew",
    "Failed",
    "Canceled",
    "Terminated",
    "Suspended",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="durablehost",
        description="Run an Azure Durable Functions Python app without the Functions host, and manage it.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    start = commands.add_parser("start", help="serve an app: HTTP triggers, orchestrations, management API")
    start.add_argument("--app-dir", type=Path, default=Path("."), help="the app folder (default: .)")
    start.add_argument(
        "--port",
        type=int,
        default=None,
        help="port (default: local.settings.json Host.LocalHttpPort, else 7071; 0 = any free)",
    )
    start.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; any other address requires "
        f"{MASTER_KEY_SETTING}, see durablehost/http/keys.py)",
    )
    start.add_argument(
        "--store",
        default=None,
        help="memory | sqlite:PATH | azurite | <Azure Storage connection string> "
        "(default: the AzureWebJobsStorage setting, else <app-dir>/.durablehost/state.sqlite)",
    )
    start.add_argument(
        "--task-hub", default=None, help="task hub name (default: host.json hubName, else DurableHost)"
    )
    start.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY,
        help=f"largest accepted request body (default {DEFAULT_MAX_BODY})",
    )
    start.add_argument(
        "--fidelity",
        type=_fidelity,
        default=None,
        metavar="{durablehost,azure}",
        help="azure: behave exactly as Azure where durablehost deliberately differs (README, "
        "'Differences from Azure'); default: host.json durablehost.fidelity, else durablehost",
    )
    start.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    start.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="worker processes behind the one port (default 1; auto = one per core): each runs the app "
        "and shares the task hub's partitions with the others",
    )
    start.add_argument(
        "--list",
        action="store_true",
        help="print every function with its trigger and whether (and how) it is served, then exit; "
        "opens no port, store or queue",
    )

    def managed(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--url", default=DEFAULT_URL, help=f"the running host (default {DEFAULT_URL})")
        sub.add_argument(
            "--key",
            default=os.environ.get(MASTER_KEY_SETTING),
            help=f"management key (default: ${MASTER_KEY_SETTING}); only needed off loopback",
        )
        return sub

    managed("status", "show an instance's status").add_argument("instance_id", metavar="ID")
    listing = managed("list", "list instances")
    listing.add_argument(
        "--status",
        action="append",
        default=[],
        type=_status,
        metavar="STATUS",
        help=f"filter by runtime status (repeatable): {', '.join(STATUSES)}",
    )
    listing.add_argument("--prefix", default=None, help="instance id prefix")
    raising = managed("raise", "raise an external event (JSON data, default null)")
    raising.add_argument("instance_id", metavar="ID")
    raising.add_argument("event", metavar="EVENT")
    raising.add_argument("data", metavar="JSON", nargs="?", default="null")
    raising.add_argument("--idempotency-key", default=None, help="deliver at most once per key")
    for operation in ("terminate", "suspend", "resume"):
        sub = managed(operation, f"{operation} an instance")
        sub.add_argument("instance_id", metavar="ID")
        sub.add_argument("--reason", default=None)
    managed("purge", "delete a finished instance and its history").add_argument("instance_id", metavar="ID")
    managed("history", "show an instance's history as a table").add_argument("instance_id", metavar="ID")
    exporting = managed("export", "write an instance's history as a JSON document for replay-check")
    exporting.add_argument("instance_id", metavar="ID")
    exporting.add_argument("-o", "--output", type=Path, default=None, help="file to write (default: stdout)")
    checking = commands.add_parser(
        "replay-check",
        help="replay exported histories against the app's current code; runs no activity",
    )
    checking.add_argument("--app-dir", type=Path, default=Path("."), help="the app folder (default: .)")
    checking.add_argument(
        "paths", nargs="+", type=Path, metavar="FILE_OR_DIR", help="export files, or folders of *.json"
    )
    return parser


def _epilog() -> str | None:
    """The module docstring's exit codes, without its reST ``literal`` markup (help is plain text)."""
    return __doc__.split("\n\n", 2)[2].replace("``", "") if __doc__ else None


def _status(text: str) -> str:
    for status in STATUSES:
        if status.lower() == text.lower():
            return status
    raise argparse.ArgumentTypeError(f"unknown status {text!r}; use {', '.join(STATUSES)}")


def _fidelity(text: str) -> Fidelity:
    try:
        return Fidelity.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(arguments)
    if args.command == "start":
        return _start(args, arguments)
    if args.command == "replay-check":
        return _replay_check(args)
    try:
        return asyncio.run(_manage(args))
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


def _workers(text: str) -> int:
    if text == "auto":
        return os.cpu_count() or 1
    if not text.isdigit() or not 1 <= int(text) <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"--workers must be auto or a whole number from 1 to {MAX_WORKERS}")
    return int(text)


def _without_workers(argv: Sequence[str]) -> list[str]:
    """The command line of a worker: the supervisor's own, without --workers."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            kept.append(arg)
    return kept


def _start(args: argparse.Namespace, argv: Sequence[str]) -> int:
    if args.list:
        return list_functions(args.app_dir.resolve(), sys.stdout, sys.stderr)
    role = role_from_environment()
    prefix = f"[{role.label}] " if role is not None else ("[supervisor] " if args.workers > 1 else "")
    logging.basicConfig(
        level=args.log_level, format=f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s"
    )
    if args.log_level != "DEBUG":
        # The Azure SDK logs every storage request with its headers at INFO: noise that drowns the host's
        # own messages.
        logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
    if args.max_body_bytes < 1:
        print("error: --max-body-bytes must be positive", file=sys.stderr)
        return EXIT_CONFIG
    options = StartOptions(
        app_dir=args.app_dir,
        host=args.host,
        port=args.port,
        store=args.store,
        task_hub=args.task_hub,
        max_body=args.max_body_bytes,
        fidelity=args.fidelity,
        worker=role,
    )
    try:
        if role is None and args.workers > 1:
            return asyncio.run(supervise(options, args.workers, _without_workers(argv)))
        return asyncio.run(run(options))
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


def _replay_check(args: argparse.Namespace) -> int:
    try:
        # As `start` does: local.settings.json Values (PYTHON_SCRIPT_FILE_NAME among them) become
        # environment variables unless already set.
        apply_settings(read_local_settings(args.app_dir).values, os.environ)
        functions = load_app(args.app_dir)
    except (AppLoadError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    try:
        reports = check_paths(functions, args.paths)
    except (OSError, HistoryDocumentError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not reports:
        print("error: no history documents (*.json) found", file=sys.stderr)
        return 2
    for report in reports:
        print(report.describe())
    failed = sum(not report.ok for report in reports)
    noun = "history" if len(reports) == 1 else "histories"
    print(f"{len(reports)} {noun} replayed, {failed} with problems")
    return 1 if failed else 0


async def _manage(args: argparse.Namespace) -> int:
    client = ManagementClient(args.url, args.key)
    command = args.command
    if command == "status":
        _print_json(await client.status(args.instance_id))
    elif command == "list":
        _print_table(
            ["instanceId", "name", "runtimeStatus", "createdTime", "lastUpdatedTime"],
            await client.list(statuses=args.status, prefix=args.prefix),
        )
    elif command == "raise":
        # The data is sent as the request body: the host's rules for bodies apply (payloads.py).
        try:
            payloads.check_text(args.data, "the event data")
            payloads.parse_body(args.data, "the event data")
        except InvalidRequest as exc:
            raise ClientError(f"{exc}; give JSON, and quote strings as '\"text\"'", 2) from exc
        delivered = await client.raise_event(args.instance_id, args.event, args.data, args.idempotency_key)
        if delivered:
            print(f"raised {args.event!r} on {args.instance_id}")
        else:
            print(
                f"{args.event!r} was raised on {args.instance_id} before with this idempotency key: not again"
            )
    elif command in ("terminate", "suspend", "resume"):
        await client.change(args.instance_id, command, args.reason)
        print(f"{command} requested for {args.instance_id}")
    elif command == "purge":
        print(f"purged {await client.purge(args.instance_id)} instance(s)")
    elif command == "history":
        status = await client.status(args.instance_id, history=True)
        print(f"{status['name']} {status['instanceId']}: {status['runtimeStatus']}")
        rows = [_history_row(event) for event in status.get("historyEvents") or []]
        _print_table(["Timestamp", "EventType", "Name", "Detail"], rows)
    elif command == "export":
        text = json.dumps(await client.export_history(args.instance_id), indent=2) + "\n"
        if args.output is None:
            sys.stdout.write(text)
        else:
            args.output.write_text(text, encoding="utf-8")
            print(f"wrote the history of {args.instance_id} to {args.output}")
    return 0


def _history_row(event: dict[str, Any]) -> dict[str, Any]:
    detail: Any = ""
    for key in ("Result", "Input", "Reason", "FireAt", "OrchestrationStatus"):
        if event.get(key) is not None:
            detail = f"{key}={json.dumps(event[key])}"
            break
    return {
        "Timestamp": event.get("Timestamp", ""),
        "EventType": event.get("EventType", ""),
        "Name": event.get("FunctionName") or event.get("Name") or "",
        "Detail": detail,
    }


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _print_table(columns: list[str], rows: list[dict[str, Any]], width: int = 60) -> None:
    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        return text if len(text) <= width else text[: width - 1] + "…"

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    if not rows:
        print("(none)")


if __name__ == "__main__":
    sys.exit(main())
