"""The job dispatcher (`alto worker`): claim a queued job, keep its lease alive, run its
studies through Ray Tune, stream every trial into the database, write recommendations.

Leases make the queue safe: a worker renews its lease every few seconds; if it dies,
the lease expires and another worker claims the job and resumes it. Finished trials
stay in the database, are fed back to the new search and are not re-run; a trial
that was running when its worker died is recorded as failed ("interrupted") and its
budget slot is run again under a new number, so no trial number is ever reused.

This module claims jobs, keeps their leases and finishes them; workers/runner.py runs
one job.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable

from service.catalogue.repository import OptimizerInfo, TaskInfo
from service.core.config import Settings
from service.core.statuses import JobStatus
from service.jobs.repository import Job, LeaseLost
from service.storage import Database
from service.trials.repository import Trial
from workers import search
from workers.runner import JobRunner, JobStopped
from workers.runtime import Runtime
from workers.tasks import registered_tasks

log = logging.getLogger(__name__)


def publish_catalogue(database: Database, worker: str) -> None:
    tasks = [TaskInfo(**t.catalogue_entry()) for t in registered_tasks().values()]
    optimizers = [OptimizerInfo(**o) for o in search.catalogue_entries()]
    with database.unit_of_work(write=True) as uow:
        uow.catalogue.publish_tasks(tasks, publisher=worker)
        uow.catalogue.publish_optimizers(optimizers)


class LeaseKeeper(threading.Thread):
    """Renews the job's lease and watches for a cancel request."""

    def __init__(
        self,
        database: Database,
        job_id: int,
        worker: str,
        settings: Settings,
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"lease-{job_id}", daemon=True)
        self.database, self.job_id, self.worker = database, job_id, worker
        self.lease_seconds, self.period = settings.lease_seconds, settings.heartbeat_period
        self.stop_job = stop
        self.reason: str | None = None
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.period):
            try:
                with self.database.unit_of_work(write=True) as uow:
                    job = uow.jobs.heartbeat(self.job_id, self.worker, self.lease_seconds)
                if job.cancel_requested:
                    self._halt(JobStatus.CANCELLED)
            except LeaseLost:
                self._halt("lease-lost")
            except Exception:  # a database hiccup: the next beat tries again
                log.exception("heartbeat of job %s failed", self.job_id)

    def _halt(self, reason: str) -> None:
        self.reason = self.reason or reason
        self.stop_job.set()
        self._done.set()

    def close(self) -> None:
        self._done.set()
        self.join(timeout=30)


class Dispatcher:
    """`alto worker`: claim jobs and run them until told to stop.

    With ``concurrent_jobs`` 1 (the default) jobs run one after another in this process.
    With more, each job runs in a process of its own that joins the same Ray cluster:
    Ray Tune keeps process-wide state (its trainable registry among others) that two
    Tuners in one process trample, and Ray's own advice for several experiments on one
    cluster is one driver each.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        worker_id: str | None = None,
        max_jobs: int | None = None,
        exit_when_idle: bool = False,
        concurrent_jobs: int | None = None,
    ) -> None:
        self.settings = settings
        self.database = Database.from_settings(settings)
        self.worker = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.max_jobs = max_jobs
        self.exit_when_idle = exit_when_idle
        self.concurrent_jobs = concurrent_jobs or settings.worker_concurrent_jobs

    def run(self) -> int:
        publish_catalogue(self.database, self.worker)
        try:
            with Runtime(self.settings) as runtime:
                log.info("worker %s on Ray with %s", self.worker, runtime.resources)
                if self.concurrent_jobs > 1:
                    return self._run_pool(runtime)
                return self._run_serial(runtime)
        finally:
            self.database.dispose()

    def claim(self, job_id: int | None = None) -> Job | None:
        """Take a queued job (or only ``job_id``) under this worker's lease."""
        with self.database.unit_of_work(write=True) as uow:
            return uow.jobs.claim(
                self.worker,
                self.settings.lease_seconds,
                job_id=job_id,
                max_abandoned=self.settings.job_max_abandoned,
            )

    def _run_serial(self, runtime: Runtime) -> int:
        done = 0
        while not runtime.shutdown.is_set():
            if self.max_jobs is not None and done >= self.max_jobs:
                break
            job = self.claim()
            if job is None:
                if self.exit_when_idle:
                    break
                runtime.shutdown.wait(self.settings.worker_poll_seconds)
                continue
            self.run_job(job, runtime)
            done += 1
        return done

    def _run_pool(self, runtime: Runtime) -> int:
        """Up to ``concurrent_jobs`` jobs at once, each in its own process."""
        context = multiprocessing.get_context("spawn")
        address = runtime.cluster_address()
        running: dict[int, multiprocessing.process.BaseProcess] = {}
        started = 0
        try:
            while not runtime.shutdown.is_set():
                for job_id, process in list(running.items()):
                    if not process.is_alive():
                        process.join()
                        del running[job_id]
                        log.info("job %s: its process exited with %s", job_id, process.exitcode)
                        if process.exitcode != 0:
                            self._after_crash(job_id, process.exitcode)
                more = self.max_jobs is None or started < self.max_jobs
                job = self.claim() if more and len(running) < self.concurrent_jobs else None
                if job is not None:
                    process = context.Process(
                        target=_job_process,
                        args=(self.settings, job, self.worker, address, os.getpid()),
                        name=f"alto-job-{job.id}",
                    )
                    process.start()
                    running[job.id] = process
                    started += 1
                    continue
                if not running and (self.exit_when_idle or not more):
                    break
                # Wake when a job process ends, or to look for new jobs.
                multiprocessing.connection.wait(
                    [p.sentinel for p in running.values()], self.settings.worker_poll_seconds
                )
        finally:
            # SIGTERM makes each job process hand its job back (see _job_process).
            for process in running.values():
                process.terminate()
            for process in running.values():
                process.join()
        return started

    def _after_crash(self, job_id: int, exitcode: int | None) -> None:
        """A job process died (killed, out of memory, crashed) and left its job running under
        our lease. Hand it back now rather than when the lease expires, so this or another
        worker resumes it (its finished trials are in the database), unless it has been
        abandoned ``job_max_abandoned`` times: then it fails."""
        reason = f"its job process died (exit code {exitcode})"
        try:
            with self.database.unit_of_work(write=True) as uow:
                after = uow.jobs.abandon(
                    job_id, self.worker, self.settings.job_max_abandoned, reason
                )
        except LeaseLost:
            return  # it had finished or handed the job back itself, or another worker took it
        if after.status == JobStatus.FAILED:
            log.error("job %s failed: %s", job_id, after.error)
        else:
            log.warning("job %s: %s; handed back to the queue", job_id, reason)

    def run_job(
        self,
        job: Job,
        runtime: Runtime,
        on_trial_end: Callable[[Trial], None] | None = None,
    ) -> str:
        """Run a job this worker claimed, then finish it, hand it back (on shutdown) or let
        it go (its lease was lost); returns the outcome."""
        with runtime.job_stop() as stop:
            keeper = LeaseKeeper(self.database, job.id, self.worker, self.settings, stop)
            keeper.start()
            # A job status, or "shutdown" (hand the job back) or "lease-lost" (let it go).
            outcome: str = JobStatus.SUCCEEDED
            error = None
            try:
                JobRunner(self.database, self.settings, job, stop, runtime.cpus, on_trial_end).run()
                if stop.is_set():
                    raise JobStopped
            except JobStopped:
                shutdown = runtime.shutdown.is_set()
                outcome = keeper.reason or ("shutdown" if shutdown else JobStatus.CANCELLED)
            except Exception as exc:  # any failure of the job is the job's, not the worker's
                log.exception("job %s failed", job.id)
                outcome, error = JobStatus.FAILED, f"{type(exc).__name__}: {exc}"[:4000]
            finally:
                keeper.close()
        try:
            with self.database.unit_of_work(write=True) as uow:
                if outcome == "shutdown":
                    uow.jobs.release(job.id, self.worker)
                elif outcome != "lease-lost":
                    if keeper.reason == JobStatus.CANCELLED:
                        outcome = JobStatus.CANCELLED
                    uow.jobs.finish(job.id, self.worker, JobStatus(outcome), error)
        except LeaseLost:
            outcome = "lease-lost"
        log.info("job %s: %s", job.id, outcome)
        return str(outcome)


def _die_with_parent(parent_pid: int) -> None:
    """A job process must not outlive its dispatcher: it would keep renewing the lease of
    a job that nobody can stop or hand back. On Linux the kernel kills it when the
    dispatcher dies, even by SIGKILL; elsewhere the lease keeper's next beat notices."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent_pid:  # it died before the line above took effect
        os._exit(1)


def _job_process(settings: Settings, job: Job, worker: str, address: str, parent_pid: int) -> None:
    """Run one claimed job in a process of its own, on the dispatcher's Ray cluster."""
    _die_with_parent(parent_pid)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    dispatcher = Dispatcher(settings, worker_id=worker)
    try:
        with Runtime(settings, address=address) as runtime:
            dispatcher.run_job(job, runtime)
    finally:
        dispatcher.database.dispose()
