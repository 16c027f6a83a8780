"""Rendering on Ray workers (generator/cluster.py): one local Ray for the whole module
(starting one is slow), two workers, the tiny model. The same site as a single-process
build; a worker killed mid-build changes nothing; a worker whose model differs is
refused; a missing Ray or an unreachable cluster is one line, with nothing written."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from generator.build import BuildOptions, Progress, build_site
from generator.cluster import RAY_MISSING
from tests.helpers import MakeBlog, genimg, write_blog
from tests.tinymodels import TinyModel


def renders(test: Callable[..., None]) -> Callable[..., None]:
    """Slow, needs the render extras and Ray."""
    for mark in (pytest.mark.slow, pytest.mark.render,
                 pytest.mark.filterwarnings("ignore::DeprecationWarning")):
        test = mark(test)
    return test


POST = """
    ---
    title: Workers
    date: 2022-10-30
    ---

    ```gallery
    - id: girl
      prompt: high quality photo, beautiful young girl
      seed: 482861532
    - mode: img2img
      from: girl
      prompt: anime, red cheek
      seed: 7
      strength: 0.5
    - prompt: a cat
      seed: 1
    - prompt: a red cat
      seed: 2
      width: 72
      sampler: DPM++ 2M Karras
    ```
"""


def tiny_config(model: str) -> str:
    # batch_size 2: batches of two and of one, as a single-process build makes them.
    return (f"title: Tiny\nbase_url: /\nbatch_size: 2\nmodels:\n  default: {model}\n"
            "defaults:\n  steps: 3\n  width: 64\n  height: 64\n")


def site_files(root: Path) -> dict[str, bytes]:
    site = root / "site"
    return {p.relative_to(site).as_posix(): p.read_bytes()
            for p in sorted(site.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A local Ray with 2 CPUs for the module. Its workers see the Hugging Face cache
    that was set when it started (the folder returned), not the driver's later one."""
    ray = pytest.importorskip("ray")
    import logging

    worker_hub = tmp_path_factory.mktemp("worker-hub")
    saved = os.environ.get("HF_HUB_CACHE")
    os.environ["HF_HUB_CACHE"] = str(worker_hub)
    try:
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR,
                 log_to_driver=False)
    finally:
        if saved is None:
            del os.environ["HF_HUB_CACHE"]
        else:
            os.environ["HF_HUB_CACHE"] = saved
    yield worker_hub
    ray.shutdown()


@pytest.fixture(scope="module")
def single_process_site(tmp_path_factory: pytest.TempPathFactory,
                        tiny_model: TinyModel) -> dict[str, bytes]:
    """The site a build without workers makes."""
    root = write_blog(tmp_path_factory.mktemp("single"), {"2022-10-30-w.md": POST},
                      tiny_config(str(tiny_model.folder)))
    build_site(root, BuildOptions())
    return site_files(root)


class Steps(Progress):
    def __init__(self) -> None:
        self.total = self.done = self.pictures = 0

    def start(self, pictures: int, steps: int) -> None:
        self.total = steps

    def advance_steps(self, steps: int) -> None:
        self.done += steps

    def picture_done(self, key: str) -> None:
        self.pictures += 1


@renders
def test_two_workers_make_the_single_process_site(
    ray_local: Path, make_blog: MakeBlog, tiny_model: TinyModel,
    single_process_site: dict[str, bytes],
) -> None:
    root = make_blog({"2022-10-30-w.md": POST}, config=tiny_config(str(tiny_model.folder)))
    progress = Steps()
    report = build_site(root, BuildOptions(workers=2), progress)
    assert report.rendered == 4
    assert progress.pictures == 4
    assert progress.done == progress.total == 3 * 3 + 1  # the img2img runs 1 of its 3 steps
    assert site_files(root) == single_process_site


@renders
def test_a_worker_killed_mid_build_changes_nothing(
    ray_local: Path, make_blog: MakeBlog, tiny_model: TinyModel,
    single_process_site: dict[str, bytes], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first worker sent a batch is killed right after the batch is sent (its pid
    asked first: an actor answers in order, so asking after would wait for the batch)."""
    import ray

    from generator.cluster import _Dispatch

    killed: list[int] = []
    retried: list[int] = []
    submit, retry = _Dispatch._submit, _Dispatch._retry

    def submit_then_kill(self: _Dispatch, worker: Any, batch: Any) -> None:
        pid = None if killed else ray.get(worker.actor.where.remote())["pid"]
        submit(self, worker, batch)
        if pid is not None:
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)

    def counted(self: _Dispatch, flight: Any, exc: Exception) -> None:
        retried.append(len(flight.batch.nodes))
        retry(self, flight, exc)

    monkeypatch.setattr(_Dispatch, "_submit", submit_then_kill)
    monkeypatch.setattr(_Dispatch, "_retry", counted)
    root = make_blog({"2022-10-30-w.md": POST}, config=tiny_config(str(tiny_model.folder)))
    report = build_site(root, BuildOptions(workers=2))
    assert killed
    assert retried, "the killed worker's batch was not sent again"
    assert report.rendered == 4
    assert site_files(root) == single_process_site


def _hub_model(hub: Path, folder: Path, commit: str, name: str = "sd") -> None:
    """``tiny/NAME`` in a Hugging Face cache folder, at ``commit``."""
    repo = hub / f"models--tiny--{name}"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)


@renders
def test_a_worker_with_another_model_is_refused(
    ray_local: Path, make_blog: MakeBlog, tiny_model: TinyModel,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    driver_hub = tmp_path / "driver-hub"
    _hub_model(driver_hub, tiny_model.folder, "a" * 40)
    _hub_model(ray_local, tiny_model.folder, "b" * 40)  # the workers' cache: another commit
    monkeypatch.setenv("HF_HUB_CACHE", str(driver_hub))
    root = make_blog({"2022-10-30-w.md": POST}, config=tiny_config("tiny/sd"))
    result = genimg("build", "-C", root, "--workers", "2", "-q")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "posts/2022-10-30-w.md:" in lines[0]
    assert "worker on node" in lines[0] and "model 'default' differs" in lines[0]
    assert "b" * 40 in lines[0] and "a" * 40 in lines[0]
    assert not (root / "site").exists()
    assert not list((root / ".genimg").rglob("*.png"))


@renders
def test_a_worker_without_the_model_is_refused(
    ray_local: Path, make_blog: MakeBlog, tiny_model: TinyModel, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    driver_hub = tmp_path / "driver-hub"
    _hub_model(driver_hub, tiny_model.folder, "c" * 40, "only")  # not in the workers' cache
    monkeypatch.setenv("HF_HUB_CACHE", str(driver_hub))
    root = make_blog({"2022-10-30-w.md": POST}, config=tiny_config("tiny/only"))
    result = genimg("build", "-C", root, "--workers", "2", "-q")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "worker on node" in lines[0]
    assert "model 'default' cannot be loaded there: hub model 'tiny/only'" in lines[0]


def test_missing_ray_is_one_line(simple_blog: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # ``import ray`` raises ImportError
    result = genimg("build", "-C", simple_blog, "--preview", "--workers", "2")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {RAY_MISSING}"
    assert sorted(p.name for p in simple_blog.iterdir()) == ["genimg.yaml", "posts"]


def test_an_unreachable_cluster_is_one_line(simple_blog: Path) -> None:
    pytest.importorskip("ray")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = genimg("build", "-C", simple_blog, "--preview", "--cluster", f"127.0.0.1:{port}")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Ray cluster" in lines[0], result.stderr
    assert sorted(p.name for p in simple_blog.iterdir()) == ["genimg.yaml", "posts"]


def test_render_cluster_in_genimg_yaml(make_blog: MakeBlog) -> None:
    """``render: {cluster: …}`` is read (and checked) like every key."""
    from generator.config import load_config

    root = make_blog({}, config="title: t\nrender:\n  cluster: 10.0.0.1:6379\n  workers: 4\n")
    render = load_config(root).render
    assert (render.cluster, render.workers) == ("10.0.0.1:6379", 4)
    bad = make_blog({}, config="title: t\nrender:\n  workers: 0\n", name="bad")
    result = genimg("check", "-C", bad)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: genimg.yaml:3: ")


class CountsWorkers(Progress):
    """Counts the workers that exist when the first steps are done."""

    def __init__(self) -> None:
        self.workers: int | None = None

    def advance_steps(self, steps: int) -> None:
        import ray

        if self.workers is None:
            self.workers = sum("-worker-" in n for n in ray.util.list_named_actors())


@renders
def test_workers_auto_is_one_per_gpu_else_one(
    ray_local: Path, make_blog: MakeBlog, tiny_model: TinyModel,
    single_process_site: dict[str, bytes],
) -> None:
    from generator.cli import WorkersParam

    assert WorkersParam().convert("auto", None, None) == 0
    assert WorkersParam().convert("3", None, None) == 3
    root = make_blog({"2022-10-30-w.md": POST}, config=tiny_config(str(tiny_model.folder)))
    progress = CountsWorkers()
    report = build_site(root, BuildOptions(workers=0), progress)
    assert report.rendered == 4
    assert progress.workers == 1  # this machine has no GPU
    assert site_files(root) == single_process_site
