"""Import a Functions app the way the Python worker does, and index it.

The entry script (``script_file``, else ``$PYTHON_SCRIPT_FILE_NAME``, else ``function_app.py``) is run from
the app folder with that folder at the front of ``sys.path``, under the module name the worker uses: the
file's stem (``function_app``, ``main`` …). Keeping the worker's name keeps ``__module__`` of classes
defined in the entry script identical, which custom-object envelopes carry (protocol Appendix A). It
cannot collide with an app package such as ``function_app/`` next to ``main.py``; the one ambiguous case,
``function_app.py`` next to a ``function_app/`` package, is refused.

sys.modules hygiene. Every load executes the entry script afresh: its module is replaced, and so is every
module under one of the app folder's top-level names that an earlier ``load_app`` imported or that comes
from another folder. So loading the same app twice gives a new app object (``get_functions()`` is
single-shot, protocol §3 surprise 6), and ``from function_app import app`` in ``main.py`` finds this app's
package, not a stale one. The host's own package, ``azure`` and the standard library are never evicted.

Limits of loading two apps with same-named modules in one process (tests do): the later load evicts the
earlier app's modules from sys.modules. The earlier index keeps working for code that already holds its
objects, but anything resolved by module name afterwards sees the newer app: lazy imports inside function
bodies, and ``df_loads`` of custom-object envelopes (it looks the class up in ``sys.modules``). Serve one
app per process; load apps one after another in tests.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType

import azure.functions as func

from durablehost.errors import AppLoadError
from durablehost.functions.index import FunctionIndex, build_index

DEFAULT_SCRIPT_FILE = "function_app.py"
SCRIPT_FILE_SETTING = "PYTHON_SCRIPT_FILE_NAME"

_NEVER_EVICT = frozenset({"durablehost", "azure", "__main__"}) | sys.stdlib_module_names

# Names of the modules that earlier load_app calls brought into sys.modules.
_imported_by_loads: set[str] = set()


def load_app(app_dir: Path, script_file: str | None = None) -> FunctionIndex:
    """Import the app in ``app_dir`` and index its functions; AppLoadError says what went wrong."""
    if not app_dir.is_dir():
        raise AppLoadError(f"the app folder {app_dir} does not exist (or is not a folder)")
    app_dir = app_dir.resolve()
    script_name = script_file or os.environ.get(SCRIPT_FILE_SETTING) or DEFAULT_SCRIPT_FILE
    script = app_dir / script_name
    if not script.is_file():
        raise AppLoadError(
            f"the entry script {script} does not exist; choose the script with the app setting "
            f"{SCRIPT_FILE_SETTING} (default {DEFAULT_SCRIPT_FILE})"
        )
    module_name = script.stem
    _check_module_name(module_name, app_dir, script)
    _evict_stale_modules(app_dir, module_name)
    _put_first_on_path(app_dir)
    module = _execute(module_name, script, app_dir)
    app = _find_app(module, script)
    try:
        # Exactly once: a second call raises "does not have a unique function name" (§3 surprise 6).
        functions = app.get_functions()
    except Exception as exc:
        raise AppLoadError(f"{script}: indexing the app failed: {type(exc).__name__}: {exc}") from exc
    return build_index(functions, app_dir, script)


def _check_module_name(module_name: str, app_dir: Path, script: Path) -> None:
    if module_name in _NEVER_EVICT:
        raise AppLoadError(
            f"{script}: the entry script's module name {module_name!r} is taken by Python or the host; "
            "rename the script"
        )
    if (app_dir / module_name / "__init__.py").is_file():
        raise AppLoadError(
            f"{script}: the entry script and the package {app_dir / module_name} have the same module name "
            f"{module_name!r} (the worker would import the package); rename one, or set "
            f"{SCRIPT_FILE_SETTING} to another entry script"
        )


def _top_level_names(app_dir: Path) -> set[str]:
    names = set()
    for entry in app_dir.iterdir():
        if entry.suffix == ".py" and entry.is_file():
            names.add(entry.stem)
        elif entry.is_dir() and entry.name.isidentifier():
            names.add(entry.name)  # regular or namespace package
    return names


def _evict_stale_modules(app_dir: Path, entry_module: str) -> None:
    tops = (_top_level_names(app_dir) | {entry_module}) - _NEVER_EVICT
    for name, module in list(sys.modules.items()):
        if name.partition(".")[0] not in tops:
            continue
        if name in _imported_by_loads or not _is_under(module, app_dir):
            del sys.modules[name]
            _imported_by_loads.discard(name)


def _is_under(module: ModuleType, folder: Path) -> bool:
    file = getattr(module, "__file__", None)
    # Namespace packages have no __file__, only __path__.
    locations = [file] if file else list(getattr(module, "__path__", []))
    return any(Path(location).resolve().is_relative_to(folder) for location in locations)


def _put_first_on_path(app_dir: Path) -> None:
    entry = str(app_dir)
    while entry in sys.path:
        sys.path.remove(entry)
    sys.path.insert(0, entry)


def _execute(module_name: str, script: Path, app_dir: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, script)
    if spec is None or spec.loader is None:
        raise AppLoadError(f"{script}: Python cannot load this file as a module")
    module = importlib.util.module_from_spec(spec)
    before = set(sys.modules)
    sys.modules[module_name] = module  # as importlib does, so the script may import itself
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        del sys.modules[module_name]
        raise AppLoadError(
            f"importing {script} failed: {type(exc).__name__}: {exc}\n  at {_failing_line(exc, app_dir)}"
        ) from exc
    finally:
        _imported_by_loads.update(set(sys.modules) - before)
    return module


def _failing_line(exc: BaseException, app_dir: Path) -> str:
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}: {(exc.text or '').strip()}"
    frames = traceback.extract_tb(exc.__traceback__)
    in_app = [f for f in frames if Path(f.filename).resolve().is_relative_to(app_dir)]
    frame = (in_app or frames)[-1]
    return f"{frame.filename}:{frame.lineno}: {frame.line}"


def _find_app(module: ModuleType, script: Path) -> func.FunctionRegister:
    found: dict[int, list[str]] = {}
    apps: dict[int, func.FunctionRegister] = {}
    for attr, value in vars(module).items():
        if isinstance(value, func.FunctionRegister):
            found.setdefault(id(value), []).append(attr)
            apps[id(value)] = value
    if not apps:
        raise AppLoadError(
            f"{script} defines no module-level function app (df.DFApp or func.FunctionApp); a Blueprint "
            "alone is not indexed: register it with app.register_functions(bp)"
        )
    if len(apps) > 1:
        # The worker refuses this too; picking one would silently drop the other's functions.
        listing = "; ".join(", ".join(names) for names in found.values())
        raise AppLoadError(
            f"{script} defines {len(apps)} function apps ({listing}); keep one and merge the others into "
            "it as Blueprints with app.register_functions(bp)"
        )
    return next(iter(apps.values()))
