"""Render the misses on Ray workers: local processes (``--workers N``) or a running Ray
cluster (``--cluster ADDRESS``), instead of in the build's own process.

The driver (the build's process) cuts the misses into exactly the waves and batches a
single-process build renders, so pixels never depend on where a picture ran. It sends a
batch to a worker as soon as the pictures it reads exist, passing them as Ray object
references (they move between workers without the driver's help), prefers a worker that
already holds the batch's model, and alone writes the cache, one picture as it arrives:
a worker that dies mid-batch leaves nothing half-written, and its batch goes to another
worker. Before any work, every worker proves that its copy of each model (and of the
face restorer's weights) has the driver's fingerprint. Ray is optional
(``genimg[ray]``): it is imported here, and only when workers are asked for.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .config import SiteConfig
from .errors import GenimgError
from .models import FaceRestorerRef, ModelRef, ModelResolver
from .modes import MODES, RENDERERS
from .plan import Node, Plan
from .progress import Progress
from .rendering import Renderers, Store, by_renderer, source_image, task_for, waves

if TYPE_CHECKING:
    from .cache import Cache
    from .render.base import RenderTask

RAY_MISSING = ("rendering on workers needs Ray, which is not installed: "
               "pip install 'genimg[ray]'")
MAX_ATTEMPTS = 3  # a batch whose worker died is sent again, at most this often in all
IN_FLIGHT = 2  # batches sent to a worker at once: one running, the next one waiting
FACES = "face restorer"
START_TIMEOUT = 180  # seconds for every worker to start (a cluster without room: never)


@dataclass(frozen=True)
class Where:
    """Where pictures render: ``workers`` local processes, or on the Ray ``cluster``."""

    workers: int | None = None
    cluster: str | None = None

    @property
    def wanted(self) -> bool:
        return self.workers is not None or self.cluster is not None


def import_ray() -> Any:
    """Ray, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise GenimgError(RAY_MISSING) from None
    return ray


def preflight(where: Where) -> None:
    """Before the build writes anything: Ray is installed and the cluster answers."""
    import_ray()
    if where.cluster is not None:
        _check_reachable(where.cluster)


@contextmanager
def worker_pool(config: SiteConfig, where: Where, preview: bool) -> Iterator[Pool]:
    """Connect to Ray (start a local one for ``--workers``); on leaving, stop the workers
    and, if this build started Ray, Ray too. A Ray already running in this process (a
    test's) is used as it is."""
    ray = import_ray()
    owned = not ray.is_initialized()
    if owned:
        _connect(ray, config, where)
    pool = Pool(ray, config, where, preview)
    try:
        yield pool
    finally:
        pool.close()
        if owned:
            ray.shutdown()


def _connect(ray: Any, config: SiteConfig, where: Where) -> None:
    quiet: dict[str, Any] = dict(logging_level=logging.ERROR, log_to_driver=False)
    if where.cluster is None:
        ray.init(num_cpus=where.workers or 1, include_dashboard=False, **quiet)
        return
    try:
        ray.init(address=where.cluster, **quiet)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError, …
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise GenimgError(f"cannot use the Ray cluster at {where.cluster!r}: {first}") from None


def _check_reachable(address: str) -> None:
    """Ray waits forever for an address nobody answers at: ask first, for 5 seconds."""
    if address == "auto":
        return
    client = address.startswith("ray://")
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon:
        host, port = port, "10001" if client else "6379"
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as exc:
        raise GenimgError(
            f"cannot reach the Ray cluster at {address!r} "
            f"({getattr(exc, 'strerror', None) or exc}); start "
            "one with `ray start --head` and give the address it prints") from None


@dataclass
class Batch:
    """One renderer call, exactly as a single-process build would make it."""

    renderer: str
    nodes: list[Node]
    model: str | None  # the fingerprint of its model: workers keep theirs when they can
    attempts: int = 0


def plan_batches(config: SiteConfig, misses: list[Node], preview: bool) -> list[Batch]:
    """The single-process build's waves and renderer calls, in its order."""
    batches = []
    for wave in waves(misses):
        for renderer, nodes in by_renderer(wave).items():
            by_key = {node.key: node for node in nodes}
            real = not preview or RENDERERS[renderer].exact
            split = RENDERERS[renderer if real else "preview"].batcher()
            for tasks in split([task_for(node, None) for node in nodes],
                               config.batch_limit):
                picked = [by_key[task.key] for task in tasks]
                model = picked[0].model.fingerprint if picked[0].model else None
                batches.append(Batch(renderer, picked, model))
    return batches


class Worker:
    """A Ray actor: one process's renderers, so each model is loaded once per worker."""

    def __init__(self, config: SiteConfig, preview: bool, steps: Any, threads: str | None):
        # On a CPU the thread count changes the pixels (sums split differently): render
        # with the driver's, not the one Ray gives a worker, so a picture comes out the
        # same as in a single-process build. (torch reads it when first imported: now.)
        if threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = threads
        self.config = config
        self.renderers = Renderers(config, preview)
        self.steps = steps  # the driver's step counter (an actor)

    def where(self) -> dict[str, Any]:
        import ray

        return {"node": ray.util.get_node_ip_address(), "host": socket.gethostname(),
                "pid": os.getpid()}

    def prove(self, names: list[str], restorer: bool) -> dict[str, tuple[str, str | None]]:
        """(fingerprint, problem) of each model as this node has it: the driver compares."""
        resolver = ModelResolver(self.config)  # never saved: the driver's cache is not ours
        found: dict[str, tuple[str, str | None]] = {}
        for name in names:
            try:
                ref = resolver.model(name)
                found[name] = (ref.fingerprint, ref.problem)
            except GenimgError as exc:
                found[name] = ("", exc.message)
        if restorer:
            faces = resolver.restorer()
            found[FACES] = (faces.fingerprint, faces.problem)
        return found

    def render(self, tasks: list[RenderTask], *sources: Any) -> tuple[Any, ...]:
        """The batch's pictures in its order, then the seconds each took."""
        tasks = [replace(task, source=source) for task, source in zip(tasks, sources,
                                                                      strict=True)]
        renderer = self.renderers.for_mode(tasks[0].spec.mode)
        pictures, seconds = {}, {}
        started = time.perf_counter()
        for task, image in renderer.render(tasks, self.steps.add.remote):
            pictures[task.key], seconds[task.key] = image, time.perf_counter() - started
            started = time.perf_counter()
        return (*(pictures[t.key] for t in tasks), [seconds[t.key] for t in tasks])

    def close(self) -> None:
        self.renderers.close()


class StepCounter:
    """Denoising steps finished on every worker, for the driver's progress bar."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, steps: int) -> None:
        self.count += steps

    def take(self) -> int:
        count, self.count = self.count, 0
        return count


def _actor_class(ray: Any) -> Any:
    """``Worker`` as a Ray actor whose ``where`` answers even while it renders."""

    class _Worker(Worker):
        @ray.method(concurrency_group="info")  # type: ignore[misc]
        def where(self) -> dict[str, Any]:
            return Worker.where(self)

    return ray.remote(concurrency_groups={"info": 1}, max_restarts=0)(_Worker)


@dataclass
class _Handle:
    actor: Any
    node: str
    model: str | None = None  # the model of the last batch it was sent
    busy: int = 0
    alive: bool = True
    name: str = ""


@dataclass
class _Flight:
    batch: Batch
    worker: _Handle
    refs: list[Any]  # one per picture, then the seconds


class Pool:
    """The workers of one build and the driver's side of rendering on them."""

    def __init__(self, ray: Any, config: SiteConfig, where: Where, preview: bool):
        self.ray, self.config, self.where, self.preview = ray, config, where, preview
        self.workers: list[_Handle] = []
        self.steps: Any = None

    def render(self, plan: Plan, cache: Cache, misses: list[Node], progress: Progress,
               store: Store) -> None:
        """Render ``misses`` on the workers; ``store`` puts each picture in the cache."""
        batches = plan_batches(self.config, misses, self.preview)
        self._start(min(self._count(), len(batches)))
        if not self.preview:
            self._prove(misses)
        total = sum(MODES[node.spec.mode].work(node.spec) for node in misses)
        _Dispatch(self, cache, batches, progress, store, total).run()

    def _count(self) -> int:
        """``workers``, else one per GPU of the cluster, else one per node."""
        if self.where.workers:
            return self.where.workers
        gpus = int(self.ray.cluster_resources().get("GPU", 0))
        nodes = sum(1 for node in self.ray.nodes() if node.get("Alive"))
        return gpus if gpus and self.config.device != "cpu" else max(1, nodes)

    def _start(self, count: int) -> None:
        resources = self.ray.cluster_resources()
        gpus, cpus = resources.get("GPU", 0), resources.get("CPU", 1)
        # Spread over the nodes; on CPUs the reservation only places a worker (it renders
        # with the driver's thread settings: see Worker).
        options: dict[str, Any] = {"scheduling_strategy": "SPREAD",
                                   "num_cpus": round(min(1.0, cpus / count), 4)}
        if gpus and self.config.device != "cpu":
            options.update(num_gpus=round(min(1.0, gpus / count), 4), num_cpus=0)
        self.steps = self.ray.remote(num_cpus=0)(StepCounter).remote()
        actor_class, token = _actor_class(self.ray), uuid.uuid4().hex[:8]
        actors = []
        for index in range(count):
            name = f"genimg-{token}-worker-{index}"
            actors.append((name, actor_class.options(name=name, **options).remote(
                self.config, self.preview, self.steps, os.environ.get("OMP_NUM_THREADS"))))
        try:
            places = self.ray.get([actor.where.remote() for _, actor in actors],
                                  timeout=START_TIMEOUT)
        except self.ray.exceptions.GetTimeoutError:
            raise GenimgError(
                f"the Ray cluster did not start {count} workers in {START_TIMEOUT} s "
                f"(each asks for {options.get('num_gpus', 0)} GPU, {options['num_cpus']} CPU); "
                "ask for fewer with --workers", self.config.file) from None
        self.workers = [_Handle(actor, f"{place['node']} ({place['host']})", name=name)
                        for (name, actor), place in zip(actors, places, strict=True)]

    def _prove(self, misses: list[Node]) -> None:
        """Every worker's models and restorer weights are the driver's, or one line."""
        used: dict[str, tuple[Node, ModelRef | FaceRestorerRef]] = {}
        for node in misses:
            if MODES[node.spec.mode].generates:
                for ref in (node.model, node.refiner):  # a refiner is a model too
                    if ref is not None:
                        used.setdefault(ref.name, (node, ref))
            if node.restorer is not None and not MODES[node.spec.mode].generates:
                used.setdefault(FACES, (node, node.restorer))
        names = [name for name in used if name != FACES]
        answers = self.ray.get([w.actor.prove.remote(names, FACES in used)
                                for w in self.workers])
        for worker, found in zip(self.workers, answers, strict=True):
            for name, (node, ours) in used.items():
                theirs, problem = found[name]
                shown = FACES if name == FACES else f"model {name!r}"
                if problem:
                    raise node.shown.location.error(
                        f"worker on node {worker.node}: {shown} cannot be loaded there: "
                        f"{problem}")
                if theirs != ours.fingerprint:
                    raise node.shown.location.error(
                        f"worker on node {worker.node}: {shown} differs from the driver's "
                        f"({theirs} there, {ours.fingerprint} here); give every node the "
                        "same files")

    def close(self) -> None:
        """Stop the workers (a worker's models go with its process)."""
        for worker in self.workers:
            if worker.alive:
                self.ray.kill(worker.actor)
        if self.steps is not None:
            self.ray.kill(self.steps)
        self.workers, self.steps = [], None


class _Dispatch:
    """The driver's loop: send ready batches to free workers, store what comes back."""

    def __init__(self, pool: Pool, cache: Cache, batches: list[Batch], progress: Progress,
                 store: Store, total: int):
        self.ray, self.pool, self.cache = pool.ray, pool, cache
        self.pending, self.progress, self.store = batches, progress, store
        self.rendering = {node.key for batch in batches for node in batch.nodes}
        self.readers: dict[str, int] = {}  # pictures of this build still to be read
        for batch in batches:
            for node in batch.nodes:
                if node.parent in self.rendering:
                    self.readers[node.parent] = self.readers.get(node.parent, 0) + 1
        self.pictures: dict[str, Any] = {}  # key -> its object reference, while read
        self.done: set[str] = set()
        self.flights: dict[Any, _Flight] = {}  # by the reference of its seconds
        self.steps_left = total

    def run(self) -> None:
        while self.pending or self.flights:
            self._send()
            if not self.flights:
                raise GenimgError(
                    f"every worker died; {self.store.stored} pictures were saved to the "
                    "cache: run the build again to render the rest")
            finished, _ = self.ray.wait(list(self.flights), num_returns=1, timeout=0.25)
            self._count_steps()
            for ref in finished:
                self._collect(self.flights.pop(ref))
        self._count_steps()

    def _ready(self, batch: Batch) -> bool:
        return all(node.parent not in self.rendering or node.parent in self.done
                   for node in batch.nodes)

    def _send(self) -> None:
        """Every idle worker first, then each one's next batch; a worker gets a batch of
        the model it has when one is ready."""
        for slot in range(IN_FLIGHT):
            for worker in self.pool.workers:
                if not worker.alive or worker.busy > slot:
                    continue
                ready = [batch for batch in self.pending if self._ready(batch)]
                if not ready:
                    return
                batch = next((b for b in ready if b.model == worker.model), ready[0])
                self.pending.remove(batch)
                self._submit(worker, batch)

    def _submit(self, worker: _Handle, batch: Batch) -> None:
        sources = [self.pictures[node.parent] if node.parent in self.pictures
                   else source_image(node, self.cache) for node in batch.nodes]
        tasks = [task_for(node, None) for node in batch.nodes]
        refs = worker.actor.render.options(num_returns=len(tasks) + 1).remote(tasks, *sources)
        worker.busy += 1
        worker.model = batch.model
        self.flights[refs[-1]] = _Flight(batch, worker, refs)

    def _collect(self, flight: _Flight) -> None:
        flight.worker.busy -= 1
        errors = self.ray.exceptions
        try:
            *pictures, seconds = self.ray.get(flight.refs)
        except (errors.RayActorError, errors.ObjectLostError) as exc:
            self._retry(flight, exc)
            return
        except errors.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, GenimgError):
                raise cause from None
            raise GenimgError(f"worker on node {flight.worker.node} failed: "
                              f"{type(cause).__name__}: {cause}") from None
        for node, image, took, ref in zip(flight.batch.nodes, pictures, seconds,
                                          flight.refs, strict=False):
            self.store(node, image, took)
            self.done.add(node.key)
            if self.readers.get(node.key):
                self.pictures[node.key] = ref
            if node.parent in self.readers:
                self.readers[node.parent] -= 1
                if not self.readers[node.parent]:
                    self.pictures.pop(node.parent, None)

    def _retry(self, flight: _Flight, exc: Exception) -> None:
        """The worker died, or a picture it read was lost with its node: the batch goes to
        another worker, reading its parents from the cache."""
        batch = flight.batch
        if isinstance(exc, self.ray.exceptions.ObjectLostError):
            for node in batch.nodes:
                self.pictures.pop(node.parent or "", None)
        else:
            flight.worker.alive = False
        batch.attempts += 1
        if batch.attempts >= MAX_ATTEMPTS:
            raise GenimgError(
                f"a batch of {len(batch.nodes)} pictures failed on {batch.attempts} workers; "
                f"the last on node {flight.worker.node}: {type(exc).__name__}") from None
        self.pending.insert(0, batch)

    def _count_steps(self) -> None:
        """Steps reported by the workers (never past the total: a retried batch's first
        try counted too)."""
        steps = min(self.ray.get(self.pool.steps.take.remote()), self.steps_left)
        if steps:
            self.steps_left -= steps
            self.progress.advance_steps(steps)
