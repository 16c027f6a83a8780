"""``genimg serve``'s save-to-reload time: a post saved, until the browser is told to reload.

    python bench/bench_serve.py                  # 1000 posts, 5 saves
    python bench/bench_serve.py --posts 100 --saves 10

Uses ``bench_site``'s blog (``--workdir``, made on first use). Starts the dev server in
this process (``DevServer``, the code ``genimg serve`` runs, with ``--frozen``), waits
for its first build, then appends a paragraph to one post at a time and measures from
the write to the moment the server publishes the new build (what its event stream
sends the page: the reload itself is one request). Includes the watcher's delay.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import bench_site
from _util import fmt_s, machine_line, median, table


def main() -> None:
    from generator.build import BuildOptions
    from generator.serve import DevServer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--saves", type=int, default=5)
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "genimg-bench")
    args = parser.parse_args()
    print(f"bench_serve: {machine_line()}")
    root = args.workdir / f"genimg-{args.posts}"
    bench_site.make_blog(root, args.posts)
    lines: list[str] = []
    server = DevServer(root, BuildOptions(frozen=True), port=0, log=lines.append,
                       error_log=lines.append)
    started = time.perf_counter()
    server.start()
    print(f"first build (start of serve): {time.perf_counter() - started:.2f} s", flush=True)
    waits, builds = [], []
    try:
        for n in range(args.saves):
            time.sleep(1.0)  # a writer types between saves
            since = server.state.generation
            t0 = time.perf_counter()
            bench_site.edit_post(root, (n * 37) % args.posts, 5000 + n)
            got = server.state.wait(since, timeout=120)
            waits.append(time.perf_counter() - t0)
            if got is None or got[1]:
                raise SystemExit(f"no build, or a failed one: {got}")
            match = re.search(r" in ([0-9.]+)s", lines[-1])
            builds.append(float(match.group(1)) if match else float("nan"))
    finally:
        server.close()
        for n in range(args.saves):
            bench_site.restore_post(root, (n * 37) % args.posts)
    print(table(("one post saved", "median", "min", "max", "saves"),
                [("save to reload", fmt_s(median(waits)), fmt_s(min(waits)),
                  fmt_s(max(waits)), len(waits)),
                 ("of which the build", fmt_s(median(builds)), fmt_s(min(builds)),
                  fmt_s(max(builds)), len(builds))]))


if __name__ == "__main__":
    main()
