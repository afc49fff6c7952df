"""Index the agent app with the Azure Functions Python worker's own code; print what it found as JSON.

Run in its own process (tests/app/test_worker_indexing.py): the worker imports the app as top-level
modules, which must not mix with the test process's imports.
"""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


class BindingInfo:
    """Stand-in for the worker's gRPC protobuf message: the Functions host supplies the real protos, which
    do not exist outside it. Only the direction constants and a field holder are used while indexing."""

    in_, out, inout = 0, 1, 2

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


def main() -> None:
    sys.path.insert(0, str(REPO))
    os.chdir(REPO)
    os.environ["PYTHON_SCRIPT_FILE_NAME"] = "main.py"
    import azure.functions  # noqa: F401 - the binding registry below is read from the loaded module
    from azure_functions_runtime.bindings.meta import load_binding_registry
    from azure_functions_runtime.functions import Registry
    from azure_functions_runtime.loader import index_function_app, process_indexed_function

    load_binding_registry()
    protos = types.SimpleNamespace(
        BindingInfo=BindingInfo, RpcFunctionMetadata=BindingInfo, RpcRetryOptions=BindingInfo
    )
    functions = index_function_app(str(REPO / "main.py"))
    metadata, _logs = process_indexed_function(protos, Registry(), functions, str(REPO))
    found = {m.name: {name: b.type for name, b in m.bindings.items()} for m in metadata}
    json.dump(found, sys.stdout)


if __name__ == "__main__":
    main()
