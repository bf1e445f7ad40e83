"""Where job code runs: in the API process (the default) or as Ray tasks on a cluster.

A job is a generator function of plain data (`run_audit(task, resume_from)`, `run_training(task)`)
that yields result batches. An executor turns such a call into an iterator of those batches in the
API process, which alone writes the store (DESIGN.md). The in-process executor simply calls the
function; the Ray executor runs it as a streaming generator task, so batches come back as they are
produced while the task holds a GPU of the cluster when it has any.

Files the job reads or writes (uploaded generators, embedder weights, the embedding cache, training
states and checkpoints) are named by absolute paths under the data and models directories: on a
cluster of several machines those directories must be shared (the same paths on every node).
"""

from __future__ import annotations

import importlib.util
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# Batches a Ray task may run ahead of the API process before it waits: an audit chunk carries
# its pairs and PNGs (all of them for sources the API cannot draw), so an unbounded lead would
# pile them up in the object store.
RAY_BACKPRESSURE_BATCHES = 4

_NOT_INSTALLED = "jobs on Ray were asked for, but Ray is not installed: pip install -e '.[ray]'"


class WorkerLost(RuntimeError):
    """The machinery under a job failed (a worker process or node died), not the job's own code.

    The runner starts the job again from what the store holds, as after an API restart.
    """


class Executor(Protocol):
    """Runs a job generator function and hands its batches to the caller, in order."""

    name: str

    def stream(self, job: Callable[..., Iterator[T]], *args: Any) -> Iterator[T]:
        """The batches of `job(*args)`. Closing the iterator early stops the job."""
        ...

    def start(self) -> None:
        """Connect to what runs the jobs, so a wrong setting fails at start-up, not mid-job."""
        ...

    def slots(self) -> int:
        """How many jobs may run at once by default."""
        ...

    def describe(self) -> str:
        """One line for logs and the API: where jobs run."""
        ...

    def shutdown(self) -> None:
        """Let go of what the executor holds (a Ray connection it opened)."""
        ...


class InProcessExecutor:
    """Runs the job on the caller's thread: the embedded default, no other service."""

    name = "in-process"

    def start(self) -> None:
        return None

    def stream(self, job: Callable[..., Iterator[T]], *args: Any) -> Iterator[T]:
        return job(*args)

    def slots(self) -> int:
        return 1  # jobs on this machine would share its one GPU or its cores

    def describe(self) -> str:
        return "in-process worker"

    def shutdown(self) -> None:
        return None


class RayExecutor:
    """Runs each job as one Ray streaming generator task.

    `address` is what `ray.init` takes: "auto" (a cluster started with `ray start` on this machine),
    "host:6379" (a cluster's head), or "local" to start a private single-machine instance with
    `num_cpus` CPUs. A task asks for `gpus` GPUs; None asks for one when the cluster has any.
    """

    name = "ray"

    def __init__(self, address: str, num_cpus: int | None = None, gpus: float | None = None):
        if not address or not address.strip():
            raise ValueError("the Ray address must be 'local', 'auto' or a cluster's host:port")
        self.address = address.strip()
        if self.address.startswith("ray://"):
            raise ValueError(
                "Ray Client addresses (ray://) cannot stream a job's results back; run the "
                "server on a node of the cluster with 'auto' or the head's host:6379"
            )
        if importlib.util.find_spec("ray") is None:
            raise RuntimeError(_NOT_INSTALLED)
        self.num_cpus = num_cpus
        self.gpus = gpus
        self._connected_here = False

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError:
            raise RuntimeError(_NOT_INSTALLED) from None
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "ignore_reinit_error": True,
                "log_to_driver": False,
            }
            # "local" always starts a new instance (with no address Ray would join a cluster
            # that `ray start` left running on this machine)
            kwargs["address"] = self.address
            if self.address == "local" and self.num_cpus is not None:
                kwargs["num_cpus"] = self.num_cpus
            with _own_sigterm_handler():
                ray.init(**kwargs)
            self._connected_here = True
            log.info("jobs run on Ray: %s", ray.cluster_resources())
        return ray

    def start(self) -> None:
        self._ray()

    def task_gpus(self) -> float:
        """GPUs each job asks for: the setting, else one when the cluster has any."""
        if self.gpus is not None:
            return self.gpus
        ray = self._ray()
        return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0

    def slots(self) -> int:
        """As many jobs as the cluster has room for when it starts: GPUs / GPUs per job, or CPUs
        (a job takes one) when jobs take no GPU. Workers that join later need BIRTHDAY_CONCURRENT_JOBS."""
        resources = self._ray().cluster_resources()
        gpus = self.task_gpus()
        room = resources.get("GPU", 0) / gpus if gpus > 0 else resources.get("CPU", 0)
        return max(1, int(room))

    def stream(self, job: Callable[..., Iterator[T]], *args: Any) -> Iterator[T]:
        ray = self._ray()
        options: dict[str, Any] = {
            "num_returns": "streaming",
            "num_gpus": self.task_gpus(),
            "max_retries": 0,  # the runner restarts a lost job from the store, not Ray from step 0
            "_generator_backpressure_num_objects": RAY_BACKPRESSURE_BATCHES,
        }
        refs = ray.remote(**options)(job).remote(*args)
        return _batches(ray, refs)

    def describe(self) -> str:
        return f"Ray cluster ({self.address})"

    def shutdown(self) -> None:
        if self._connected_here:
            import ray

            ray.shutdown()
            self._connected_here = False


@contextmanager
def _own_sigterm_handler() -> Iterator[None]:
    """Keep this process's SIGTERM handler across `ray.init`, which replaces it with sys.exit:
    the server's own handler shuts down gracefully (running jobs stop at their next batch and
    stay queued for the next start)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _batches(ray: Any, refs: Any) -> Iterator[Any]:
    """Fetch each batch as the task yields it; cancel the task if the caller stops early.

    The job's own exception is raised as itself (so a failed job reads the same on both
    executors); a dead worker or node becomes WorkerLost.
    """
    finished = False
    try:
        for ref in refs:
            try:
                batch = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause
                if isinstance(cause, Exception):
                    raise cause from None
                raise
            except (
                ray.exceptions.WorkerCrashedError,
                ray.exceptions.NodeDiedError,
                ray.exceptions.ObjectLostError,
                ray.exceptions.OwnerDiedError,
                ray.exceptions.RaySystemError,
            ) as exc:
                raise WorkerLost(f"{type(exc).__name__}: {exc}") from exc
            yield batch
        finished = True
    finally:
        if not finished:
            # Not force: the task gets KeyboardInterrupt, so its own clean-up runs (an uploaded
            # generator's child process is closed, not orphaned).
            ray.cancel(refs)


def make_executor(
    ray_address: str | None, ray_num_cpus: int | None = None, ray_gpus: float | None = None
) -> Executor:
    """The Ray executor when an address is set, else the in-process one."""
    if ray_address:
        return RayExecutor(ray_address, num_cpus=ray_num_cpus, gpus=ray_gpus)
    return InProcessExecutor()
