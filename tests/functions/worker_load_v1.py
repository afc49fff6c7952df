"""Load a function.json app with the Azure Functions Python worker's own v1 loader; print what it found.

Usage: ``python worker_load_v1.py APP_DIR``. Prints JSON: for every function folder either what the
worker's ``Registry.add_function`` made of it (the module the function lives in, sync or async, which
parameter gets which binding, the return binding) or the worker's error; and the app modules the
imports created. Run in its own process (tests/functions/test_worker_loading_v1.py): the worker
installs its ``__app__`` package, which must not mix with the test process's imports.

The function metadata is what the Functions host sends (fidelity notes §1.1), read here straight from
each function.json, independently of durablehost's parser.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any


class BindingInfo:
    """Stand-in for the worker's gRPC protobuf message (the host supplies the real protos, which do not
    exist outside it): the enum constants add_function compares with, and a field holder."""

    in_, out, inout = 0, 1, 2
    undefined = 0

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


DIRECTIONS = {"in": BindingInfo.in_, "out": BindingInfo.out, "inout": BindingInfo.inout}


def metadata(folder: Path) -> types.SimpleNamespace:
    config = json.loads((folder / "function.json").read_text(encoding="utf-8-sig"))
    bindings = {
        b["name"]: BindingInfo(
            type=b["type"],
            # The host's default for a missing direction is In (BindingMetadata's enum default).
            direction=DIRECTIONS[b.get("direction", "in").lower()],
            data_type=BindingInfo.undefined,
        )
        for b in config["bindings"]
    }
    return types.SimpleNamespace(
        name=folder.name,
        directory=str(folder),
        script_file=str((folder / config.get("scriptFile", "__init__.py")).resolve()),
        entry_point=config.get("entryPoint"),
        bindings=bindings,
    )


def describe(info: Any) -> dict[str, Any]:
    # Orchestrator and entity entry points are the SDK's handles; the user's code sits behind them.
    user_code = getattr(info.func, "orchestrator_function", getattr(info.func, "entity_function", info.func))
    return {
        "module": user_code.__module__,
        "is_async": info.is_async,
        "requires_context": info.requires_context,
        "inputs": {name: t.binding_name for name, t in info.input_types.items()},
        "outputs": {name: t.binding_name for name, t in info.output_types.items()},
        "return": info.return_type.binding_name if info.return_type else None,
    }


def main(app_dir: Path) -> None:
    sys.path.append(str(app_dir))  # the worker puts the app root on sys.path, last
    import azure.functions  # noqa: F401 - the binding registry below is read from the loaded module
    from azure_functions_runtime_v1 import loader
    from azure_functions_runtime_v1.bindings.meta import load_binding_registry
    from azure_functions_runtime_v1.functions import Registry

    loader.install()
    load_binding_registry()
    registry = Registry()
    protos = types.SimpleNamespace(BindingInfo=BindingInfo)
    found: dict[str, Any] = {}
    for folder in sorted(p for p in app_dir.iterdir() if (p / "function.json").is_file()):
        meta = metadata(folder)
        try:
            function = loader.load_function(meta.name, meta.directory, meta.script_file, meta.entry_point)
            registry.add_function(meta.name, function, meta, protos)
        except Exception as exc:
            found[meta.name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        found[meta.name] = describe(registry.get_function(meta.name))
    modules = sorted(m for m in sys.modules if m.partition(".")[0] in {"__app__", "shared_code"})
    json.dump({"functions": found, "modules": modules}, sys.stdout)


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
