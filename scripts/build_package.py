"""Build the deployment zip the way ``func azure functionapp publish`` does: every file of the project
folder except what ``.funcignore`` excludes (gitignore syntax), zipped with paths relative to the root.

Usage: ``python scripts/build_package.py [--root DIR] [--output dist/app.zip]``

The zip is reproducible: entries are sorted and carry a fixed timestamp, so the same tree gives the
same bytes. Supported pattern syntax: blank lines and ``#`` comments, ``!`` negation, a trailing ``/``
for directories only, a leading or inner ``/`` anchoring to the root, ``*``, ``?``, ``[...]`` and ``**``.
As in git, a file inside an excluded directory stays excluded whatever a later negation says.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

FIXED_ZIP_TIME = (2000, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class IgnoreRule:
    """One ``.funcignore`` line, compiled."""

    regex: re.Pattern[str]
    negated: bool
    directory_only: bool


def _glob_to_regex(glob: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("/**", i) and i + 3 == len(glob):
            out.append("/.*")
            i += 3
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "[" and "]" in glob[i + 1 :]:
            end = glob.index("]", i + 1)
            body = glob[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out)


def parse_ignore_file(text: str) -> list[IgnoreRule]:
    """Compile gitignore-style lines."""
    rules: list[IgnoreRule] = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        if negated:
            line = line[1:]
        directory_only = line.endswith("/")
        line = line.rstrip("/")
        anchored = "/" in line
        line = line.lstrip("/")
        prefix = "" if anchored else "(?:.*/)?"
        rules.append(IgnoreRule(re.compile(f"^{prefix}{_glob_to_regex(line)}$"), negated, directory_only))
    return rules


def is_ignored(relative_path: str, is_dir: bool, rules: list[IgnoreRule]) -> bool:
    """Whether one path (``a/b/c``, relative, forward slashes) is excluded by the rules; the last
    matching rule decides. Parent directories are not consulted here (see :func:`collect_files`)."""
    ignored = False
    for rule in rules:
        if rule.directory_only and not is_dir:
            continue
        if rule.regex.match(relative_path):
            ignored = not rule.negated
    return ignored


def collect_files(root: Path, rules: list[IgnoreRule]) -> list[str]:
    """Relative paths of every file to package, sorted; excluded directories are not descended into."""
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        dirnames[:] = sorted(d for d in dirnames if not is_ignored(prefix + d, True, rules))
        files.extend(prefix + f for f in filenames if not is_ignored(prefix + f, False, rules))
    return sorted(files)


def build_package(root: Path, output: Path) -> list[str]:
    """Write the zip and return the packaged paths. The output file itself is never packaged."""
    ignore_file = root / ".funcignore"
    rules = parse_ignore_file(ignore_file.read_text(encoding="utf-8")) if ignore_file.is_file() else []
    output = output.resolve()
    files = [f for f in collect_files(root, rules) if (root / f).resolve() != output]
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in files:
            info = zipfile.ZipInfo(name, date_time=FIXED_ZIP_TIME)
            info.external_attr = ((root / name).stat().st_mode & 0o777) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (root / name).read_bytes())
    return files


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    repo_root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description="Build the Azure Functions deployment zip.")
    parser.add_argument("--root", type=Path, default=repo_root, help="the function app folder")
    parser.add_argument("--output", type=Path, default=None, help="the zip to write (default: dist/app.zip)")
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    if not (root / "host.json").is_file():
        print(f"error: {root} has no host.json; point --root at the function app folder", file=sys.stderr)
        return 2
    output: Path = args.output or root / "dist" / "app.zip"
    files = build_package(root, output)
    print(f"wrote {output} ({len(files)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
