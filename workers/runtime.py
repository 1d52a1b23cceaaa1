"""The one way a process here runs jobs: Ray started (or joined) once, SIGTERM and SIGINT
turned into a clean stop, and both undone on the way out. `alto worker`, its job processes,
`alto tune` and `alto report run` all run inside a ``Runtime``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any

import ray

from service.core.config import Settings

log = logging.getLogger(__name__)

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Runtime:
    """Ray for this process, and the signals that stop its work.

    On SIGTERM or SIGINT ``shutdown`` is set, and so is every event handed out by
    ``job_stop``: a running job finishes its current step and hands its job back to the
    queue. The address is the one given, else ``settings.ray_address``, else RAY_ADDRESS,
    else an embedded local Ray with ``settings.ray_num_cpus``.
    """

    def __init__(self, settings: Settings, *, address: str | None = None) -> None:
        self.address = address or settings.ray_address or os.environ.get("RAY_ADDRESS") or None
        self.num_cpus = None if self.address else settings.ray_num_cpus
        self.shutdown = threading.Event()
        self.resources: dict[str, float] = {}
        self._stops: set[threading.Event] = set()
        self._previous: dict[int, Any] = {}

    @property
    def cpus(self) -> float | None:
        return self.resources.get("CPU")

    def __enter__(self) -> Runtime:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        # Runtime handles SIGINT itself (stop every study, hand the job back); Tune's own
        # handler would end only the running Tuner and let the job go on as if done.
        os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
        # Result files are off (results stream to the database), so Tune's summary would
        # only complain that it cannot find them.
        logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                # Token auth only protects a shared cluster; the embedded one is ours alone.
                os.environ.setdefault("RAY_AUTH_MODE", "disabled")
                ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False)
        self.resources = ray.cluster_resources()
        # After ray.init, which installs handlers of its own.
        for signum in _SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        if ray.is_initialized():
            ray.shutdown()

    def cluster_address(self) -> str:
        """The address other processes join this Ray cluster with (also the embedded one)."""
        return ray.get_runtime_context().gcs_address

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: finishing the current step and releasing the lease", signum)
        self.stop()

    def stop(self) -> None:
        """What a signal does: stop every job now running here, and take no new ones."""
        self.shutdown.set()
        for event in list(self._stops):
            event.set()

    @contextmanager
    def job_stop(self) -> Iterator[threading.Event]:
        """An event that stops one job: set by the job's own reasons (cancel, lost lease)
        or by a shutdown of the whole process (set at once if that already began)."""
        event = threading.Event()
        self._stops.add(event)
        if self.shutdown.is_set():
            event.set()
        try:
            yield event
        finally:
            self._stops.discard(event)
