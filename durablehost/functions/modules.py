"""sys.path and sys.modules hygiene for importing an app, shared by both programming models.

Every load imports the app's code afresh: the modules under one of the app folder's top-level names (and
the v1 model's ``__app__`` package) that an earlier load imported, or that come from another folder, are
evicted first. So loading the same app twice gives new function objects (``get_functions()`` is
single-shot, protocol §3 surprise 6), and an app's ``shared`` package is never a stale one from another
app. The host's own package, ``azure`` and the standard library are never evicted.

Limits of loading two apps with same-named modules in one process (tests do): the later load evicts the
earlier app's modules from sys.modules. The earlier index keeps working for code that already holds its
objects, but anything resolved by module name afterwards sees the newer app: lazy imports inside function
bodies, and ``df_loads`` of custom-object envelopes (it looks the class up in ``sys.modules``). Serve one
app per process; load apps one after another in tests.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from types import ModuleType

NEVER_EVICT = frozenset({"durablehost", "azure", "__main__"}) | sys.stdlib_module_names

# Names of the modules that earlier loads brought into sys.modules.
_imported_by_loads: set[str] = set()


def top_level_names(app_dir: Path) -> set[str]:
    """The module names the app folder provides when it is on sys.path."""
    names = set()
    for entry in app_dir.iterdir():
        if entry.suffix == ".py" and entry.is_file():
            names.add(entry.stem)
        elif entry.is_dir() and entry.name.isidentifier():
            names.add(entry.name)  # regular or namespace package
    return names


def evict_stale_modules(app_dir: Path, extra_names: set[str]) -> None:
    """Drop the modules an earlier load imported, or that come from elsewhere, under the app's names."""
    tops = (top_level_names(app_dir) | extra_names) - NEVER_EVICT
    # Decide first, delete after: a nested namespace package computes its __path__ from its parent's,
    # which must still be in sys.modules while it is looked at.
    stale = [
        name
        for name, module in list(sys.modules.items())
        if name.partition(".")[0] in tops and (name in _imported_by_loads or not _is_under(module, app_dir))
    ]
    for name in stale:
        del sys.modules[name]
        _imported_by_loads.discard(name)


def _is_under(module: ModuleType, folder: Path) -> bool:
    file = getattr(module, "__file__", None)
    try:
        # Namespace packages have no __file__, only __path__ (which fails once its parent is gone).
        locations = [file] if file else list(getattr(module, "__path__", []))
    except KeyError:
        return False
    return any(Path(location).resolve().is_relative_to(folder) for location in locations)


def put_first_on_path(app_dir: Path) -> None:
    """The app folder first on sys.path, so an app package is never shadowed by an installed one.

    The worker puts the app root last (after the customer's packages); first is what makes loading one
    app after another in a process deterministic, and an app never relies on being shadowed.
    """
    entry = str(app_dir)
    while entry in sys.path:
        sys.path.remove(entry)
    sys.path.insert(0, entry)


class ImportTracker:
    """Records which modules a block of imports added, so the next load can evict them."""

    def __enter__(self) -> ImportTracker:
        self._before = set(sys.modules)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _imported_by_loads.update(set(sys.modules) - self._before)


def failing_line(exc: BaseException, app_dir: Path) -> str:
    """Where in the app an import failed: the syntax error's line, else the deepest frame in the app."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}: {(exc.text or '').strip()}"
    frames = traceback.extract_tb(exc.__traceback__)
    in_app = [f for f in frames if Path(f.filename).resolve().is_relative_to(app_dir)]
    if not frames:
        return "(no traceback)"
    frame = (in_app or frames)[-1]
    return f"{frame.filename}:{frame.lineno}: {frame.line}"
