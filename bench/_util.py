"""Helpers shared by the benchmark scripts: the checkout under test, timing, tables.

Every script benchmarks the ``generator`` package of the checkout it lives in (not
whatever ``genimg`` an editable install elsewhere points at): in-process by putting
the repository root first on ``sys.path``, in subprocesses through ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def env_for_checkout() -> dict[str, str]:
    """The environment of a subprocess that must import this checkout's ``generator``,
    from bytecode as an installed genimg is (``PYTHONDONTWRITEBYTECODE``, if set, would
    compile its forty modules again on every run: ~0.1 s of each build timed)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def genimg_cmd() -> list[str]:
    """How to run the ``genimg`` console script of the running interpreter's environment."""
    script = Path(sys.executable).parent / "genimg"
    if script.exists():
        return [str(script)]
    found = shutil.which("genimg")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from generator.cli import main; sys.exit(main())"]


def run_timed(cmd: Sequence[str], *, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> tuple[float, str]:
    """Run ``cmd``; return (wall seconds, stdout). Raises with the output if it fails."""
    started = time.perf_counter()
    proc = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return elapsed, proc.stdout


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def fmt_s(seconds: float) -> str:
    return f"{seconds:.3f} s" if seconds < 10 else f"{seconds:.1f} s"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], title: str = "") -> str:
    """A plain fixed-width table (right-aligned numbers, left-aligned first column)."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        padded = [c.ljust(w) if i == 0 else c.rjust(w)
                  for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        return "  ".join(padded).rstrip()

    out = [title] if title else []
    out.append(line(cells[0]))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(r) for r in cells[1:])
    return "\n".join(out)


def machine_line() -> str:
    """Python, cores, load (other processes skew timings on a small machine), checkout."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {load}, "
            f"checkout {REPO}")
