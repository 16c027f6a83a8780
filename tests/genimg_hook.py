"""Test-only launcher: ``python tests/genimg_hook.py build -C blog ...`` runs the genimg CLI
with a fault injected, as described by the ``GENIMG_TEST_HOOK`` environment variable
(JSON). Used by the reliability tests to kill, interrupt or starve a real build process.

``{"target": T, "n": N, "action": A, ...}`` -- at the N-th call of T, do A:

targets
    ``replace``  ``os.replace`` (the commit of every atomic write: cache, derived, site)
    ``render``   ``generator.render.preview.preview_picture`` (a picture being rendered)
    ``put``      ``generator.cache.Cache.put`` (a picture about to be stored)
    ``write``    ``os.write``; instead of ``n``, ``bytes``: fire once that many bytes were
                 written in total (the write in flight is cut there: a half-written file)
actions
    ``kill``     SIGKILL this process (nothing runs after it)
    ``sigint``   send SIGINT to this process (Ctrl-C), then carry on
    ``enospc``   raise ``OSError(ENOSPC)`` (disk full), on this call and every later one
    ``sleep``    create the file ``marker``, then sleep ``seconds`` (hold the build lock)
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
import time


def _install(hook: dict) -> None:
    action = hook["action"]
    state = {"calls": 0, "bytes": 0, "fired": False}

    def fire() -> None:
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(60)  # never reached
        elif action == "sigint":
            os.kill(os.getpid(), signal.SIGINT)
        elif action == "enospc":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        elif action == "sleep":
            with open(hook["marker"], "w") as fh:
                fh.write(str(os.getpid()))
            time.sleep(float(hook["seconds"]))

    def counted(func):
        def wrapper(*args, **kwargs):
            state["calls"] += 1
            if state["calls"] == hook["n"] or (action == "enospc" and state["fired"]):
                state["fired"] = True
                fire()
            return func(*args, **kwargs)

        return wrapper

    target = hook["target"]
    if target == "replace":
        os.replace = counted(os.replace)
    elif target == "render":
        import generator.render.preview as preview

        preview.preview_picture = counted(preview.preview_picture)
    elif target == "put":
        import generator.cache as cache

        cache.Cache.put = counted(cache.Cache.put)
    elif target == "write":
        real_write = os.write
        limit = int(hook["bytes"])

        def write(fd: int, data) -> int:
            room = limit - state["bytes"]
            if room <= 0 or state["fired"]:
                state["fired"] = True
                fire()
            if len(data) > room:
                written = real_write(fd, memoryview(data)[:room])
                state["bytes"] += written
                state["fired"] = True
                fire()
                return written
            written = real_write(fd, data)
            state["bytes"] += written
            return written

        os.write = write
    else:
        raise SystemExit(f"genimg_hook: unknown target {target!r}")


def main() -> None:
    hook = os.environ.get("GENIMG_TEST_HOOK")
    if hook:
        _install(json.loads(hook))
    from generator.cli import main as cli_main

    sys.argv[0] = "genimg"
    cli_main()


if __name__ == "__main__":
    main()
