"""Start-up cost of the ``genimg`` command, and proof that it never imports torch.

    python bench/bench_startup.py            # 5 runs each
    python bench/bench_startup.py --runs 10

Times ``genimg --version`` and ``genimg check`` on the example blog (the repository
root) as subprocesses, after one warm-up run each, next to a bare ``python -c pass``.
Then runs ``genimg check`` in one interpreter and fails (exit 1) if torch, diffusers,
transformers or gfpgan ended up in ``sys.modules``, and lists the slowest imports of
that run from ``python -X importtime``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys

from _util import REPO, env_for_checkout, genimg_cmd, machine_line, median, run_timed, table

FORBIDDEN = ("torch", "diffusers", "transformers", "gfpgan", "facexlib", "basicsr",
             "accelerate")
WATCHED = (*FORBIDDEN, "numpy", "PIL", "jinja2", "markdown", "yaml", "rich", "click")

_CHECK_IN_PROCESS = """
import json, sys
sys.argv = ["genimg", "check", "-C", {root!r}]
from generator.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
watched = {watched!r}
print(json.dumps({{"code": code, "loaded": [m for m in watched if m in sys.modules]}}))
"""


def time_runs(cmd: list[str], runs: int) -> list[float]:
    env = env_for_checkout()
    run_timed(cmd, cwd=REPO, env=env)  # warm the file-system cache
    return [run_timed(cmd, cwd=REPO, env=env)[0] for _ in range(runs)]


def check_modules() -> dict:
    code = _CHECK_IN_PROCESS.format(root=str(REPO), watched=WATCHED)
    proc = subprocess.run([sys.executable, "-c", code], env=env_for_checkout(),
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def slowest_imports(count: int) -> list[tuple[str, float]]:
    """Top-level packages by cumulative import time in one ``genimg check`` run."""
    code = _CHECK_IN_PROCESS.format(root=str(REPO), watched=WATCHED)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                          env=env_for_checkout(), capture_output=True, text=True, check=True)
    tops: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line[len("import time:"):].split("|"))
        if not cumulative.isdigit():
            continue
        top = name.strip().split(".")[0]
        # a package's first (outermost) line carries its whole cumulative time
        if name == name.lstrip() or top not in tops:
            tops[top] = max(tops.get(top, 0.0), int(cumulative) / 1e6)
    return sorted(tops.items(), key=lambda kv: kv[1], reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    print(f"bench_startup: {machine_line()}")
    print(f"genimg command: {' '.join(genimg_cmd())} (PYTHONPATH={REPO})")
    commands = [
        ("python -c pass (baseline)", [sys.executable, "-c", "pass"]),
        ("genimg --version", [*genimg_cmd(), "--version"]),
        ("genimg check (example blog)", [*genimg_cmd(), "check", "-C", str(REPO)]),
    ]
    rows = []
    for label, cmd in commands:
        times = time_runs(cmd, args.runs)
        rows.append((label, f"{median(times) * 1000:.0f}", f"{min(times) * 1000:.0f}",
                     f"{max(times) * 1000:.0f}", len(times)))
    print()
    print(table(("command", "median ms", "min ms", "max ms", "runs"), rows))

    result = check_modules()
    installed = [m for m in FORBIDDEN if importlib.util.find_spec(m) is not None]
    loaded = result["loaded"]
    bad = [m for m in loaded if m in FORBIDDEN]
    print()
    print(f"genimg check exit code {result['code']}; heavy packages installed here: "
          f"{', '.join(installed) or 'none'}")
    print(f"modules loaded by genimg check: {', '.join(loaded)}")
    print(f"torch imported by genimg check: {'YES' if 'torch' in loaded else 'no'}; "
          f"render stack imported: {', '.join(bad) or 'none'}")
    print()
    print(table(("slowest top-level imports of genimg check", "cumulative ms"),
                [(name, f"{seconds * 1000:.1f}") for name, seconds in slowest_imports(8)]))
    if bad or result["code"] != 0:
        sys.exit(1)


if __name__ == "__main__":
    main()
