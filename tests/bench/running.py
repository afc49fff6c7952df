"""Running a benchmark script as its smoke tests do: a subprocess of this interpreter, in the repository.

The timeout is generous on purpose: these tests check that a benchmark still works and what it reports,
never how fast it is, and CI's 2-core machine is busy with the rest of the suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 240.0


def run_bench(script: str, *args: str, timeout: float = TIMEOUT) -> str:
    """Run ``bench/<script>`` with ``args``; its stdout, once it exited 0."""
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-4000:]
    return done.stdout


def written_report(stdout: str) -> dict[str, Any]:
    """The JSON file a benchmark names on its last line (``written to PATH``), read and removed: a smoke
    run is not a measurement worth keeping."""
    written = stdout.strip().splitlines()[-1].removeprefix("written to ").strip()
    path = Path(written) if Path(written).is_absolute() else REPO / written
    report: dict[str, Any] = json.loads(path.read_text())
    path.unlink()
    return report
