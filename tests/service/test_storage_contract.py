"""The storage contract: the same tests against SQLite and PostgreSQL."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import text

from service.core.db import utcnow
from service.core.errors import Conflict, NotFound
from service.core.statuses import TrialStatus
from service.jobs.repository import Job, LeaseLost
from service.jobs.spec import ArmSpec, JobSpec
from tests.service.catalogue import OPTIMIZERS, TASKS, publish

# One study of four trials: trials_total is the spec's own count.
SPEC = JobSpec(
    task="digits-mlp", batch_sizes=[64], arms=[ArmSpec(optimizer="alto")], trials_per_study=4
)


def _job(database, **kwargs) -> Job:
    with database.unit_of_work(write=True) as uow:
        return uow.jobs.create(SPEC, **kwargs)


def test_job_round_trip_returns_frozen_records(database):
    job = _job(database)
    assert job.status == "queued" and job.progress == 0.0 and job.created_at.tzinfo is not None
    with pytest.raises(ValueError):
        job.status = "running"  # records are frozen
    with database.unit_of_work() as uow:
        again = uow.jobs.get(job.id)
        assert again == job and type(again) is Job
        assert uow.jobs.get(job.id + 1000) is None


def test_list_filters_and_pages(database):
    ids = [_job(database).id for _ in range(5)]
    with database.unit_of_work(write=True) as uow:
        uow.jobs.request_cancel(ids[0])
    with database.unit_of_work() as uow:
        page, total = uow.jobs.list(limit=2, offset=1)
        assert total == 5 and [j.id for j in page] == [ids[3], ids[2]]
        cancelled, total = uow.jobs.list(status="cancelled")
        assert total == 1 and cancelled[0].id == ids[0]
        assert uow.jobs.counts_by_status()["queued"] == 4


def test_unit_of_work_rolls_back_on_error(database):
    with pytest.raises(RuntimeError), database.unit_of_work(write=True) as uow:
        uow.jobs.create(SPEC)
        raise RuntimeError("boom")
    with database.unit_of_work() as uow:
        assert uow.jobs.list()[1] == 0


def test_idempotency_key_is_unique_per_owner(database):
    job = _job(database, idempotency_key="k1", request_hash="h")
    with database.unit_of_work() as uow:
        found, digest = uow.jobs.by_idempotency_key(None, "k1")
        assert found.id == job.id and digest == "h"
    with pytest.raises(Conflict):
        _job(database, idempotency_key="k1", request_hash="h")
    with database.unit_of_work(write=True) as uow:
        _, token = uow.tokens.create("alice")
    other = _job(database, idempotency_key="k1", owner_token_id=token.id)
    assert other.id != job.id


def test_claim_takes_oldest_and_never_twice(database):
    first, second = _job(database), _job(database)
    with database.unit_of_work(write=True) as uow:
        claimed = uow.jobs.claim("w1", lease_seconds=60)
    assert claimed.id == first.id and claimed.status == "running"
    assert claimed.lease_owner == "w1" and claimed.attempts == 1
    with database.unit_of_work(write=True) as uow:
        assert uow.jobs.claim("w2", lease_seconds=60).id == second.id
        assert uow.jobs.claim("w3", lease_seconds=60) is None


def test_concurrent_claimers_never_share_a_job(database):
    jobs = {_job(database).id for _ in range(24)}
    claims: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            while True:
                with database.unit_of_work(write=True) as uow:
                    job = uow.jobs.claim(name, lease_seconds=60)
                if job is None:
                    return
                with lock:
                    claims.append(job.id)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert Counter(claims) == Counter(jobs)  # each job exactly once


def test_expired_lease_makes_a_job_claimable_and_heartbeat_extends(database):
    job = _job(database)
    with database.unit_of_work(write=True) as uow:
        uow.jobs.claim("w1", lease_seconds=30)
    later = utcnow() + timedelta(seconds=31)
    with database.unit_of_work(write=True) as uow:
        assert uow.jobs.claim("w2", lease_seconds=30, now=utcnow()) is None  # lease still held
        beat = uow.jobs.heartbeat(job.id, "w1", lease_seconds=120)
        assert beat.lease_expires_at > later
        assert uow.jobs.claim("w2", lease_seconds=30, now=later) is None  # extended
    much_later = utcnow() + timedelta(seconds=121)
    with database.unit_of_work(write=True) as uow:
        taken = uow.jobs.claim("w2", lease_seconds=30, now=much_later)
    assert taken.id == job.id and taken.lease_owner == "w2" and taken.attempts == 2
    with pytest.raises(LeaseLost), database.unit_of_work(write=True) as uow:
        uow.jobs.heartbeat(job.id, "w1", lease_seconds=30)


def test_release_finish_and_cancel(database):
    a, b, c = _job(database), _job(database), _job(database)
    with database.unit_of_work(write=True) as uow:
        uow.jobs.claim("w", 60)
        released = uow.jobs.release(a.id, "w")
        assert released.status == "queued" and released.lease_owner is None
        uow.jobs.claim("w", 60)
        done = uow.jobs.finish(a.id, "w", "succeeded")
        assert done.status == "succeeded" and done.finished_at is not None and done.progress == 0
        # cancel: queued -> cancelled at once; running -> a request; finished -> conflict
        assert uow.jobs.request_cancel(c.id).status == "cancelled"
        uow.jobs.claim("w", 60)
        running = uow.jobs.request_cancel(b.id)
        assert running.status == "running" and running.cancel_requested
        with pytest.raises(Conflict, match="already succeeded"):
            uow.jobs.request_cancel(a.id)
        with pytest.raises(NotFound):
            uow.jobs.request_cancel(10_000)


def test_abandoned_jobs_are_resumed_until_the_limit_then_failed(database):
    """An expired lease (the worker died) and abandon() (a job process died) both count."""
    job = _job(database)
    with database.unit_of_work(write=True) as uow:
        uow.jobs.claim("w1", 1)
    later = utcnow() + timedelta(seconds=5)
    with database.unit_of_work(write=True) as uow:
        taken = uow.jobs.claim("w2", 60, now=later, max_abandoned=3)
        assert taken.id == job.id and taken.abandoned == 1 and taken.attempts == 2
        again = uow.jobs.abandon(job.id, "w2", 3, "its job process died (exit code -9)")
        assert again.status == "queued" and again.abandoned == 2 and again.lease_owner is None
        uow.jobs.claim("w2", 1, max_abandoned=3)
        released = uow.jobs.release(job.id, "w2")  # a clean hand-back does not count
        assert released.abandoned == 2
        uow.jobs.claim("w3", 1, max_abandoned=3)
    much_later = utcnow() + timedelta(seconds=10)
    with database.unit_of_work(write=True) as uow:
        assert uow.jobs.claim("w4", 60, now=much_later, max_abandoned=3) is None
        failed = uow.jobs.get(job.id)
    assert failed.status == "failed" and failed.abandoned == 3 and failed.lease_owner is None
    assert failed.error == "abandoned 3 times, the last: its worker stopped renewing the lease"
    with pytest.raises(LeaseLost), database.unit_of_work(write=True) as uow:
        uow.jobs.abandon(job.id, "w3", 3, "too late")


def test_cancel_requested_job_with_dead_worker_is_cancelled_on_claim(database):
    job = _job(database)
    with database.unit_of_work(write=True) as uow:
        uow.jobs.claim("dead", 1)
        uow.jobs.request_cancel(job.id)
    with database.unit_of_work(write=True) as uow:
        assert uow.jobs.claim("w2", 60, now=utcnow() + timedelta(seconds=5)) is None
        assert uow.jobs.get(job.id).status == "cancelled"


def _study(database, job):
    with database.unit_of_work(write=True) as uow:
        return uow.studies.ensure(job.id, 64, "alto", trials_total=4)


def test_trials_are_recorded_idempotently_with_non_finite_numbers(database):
    job = _job(database)
    study = _study(database, job)
    with database.unit_of_work(write=True) as uow:
        assert uow.studies.ensure(job.id, 64, "alto", trials_total=4).id == study.id
        first = uow.trials.record(
            study_id=study.id,
            job_id=job.id,
            number=0,
            status="running",
            params={"alpha": -5.0},
            alpha=-5.0,
            beta1=0.99,
            lr=1e-3,
        )
        again = uow.trials.record(
            study_id=study.id,
            job_id=job.id,
            number=0,
            status="diverged",
            final_metric=math.nan,
            best_metric=-math.inf,
            epochs_run=2,
            steps=14,
            final_train_loss=math.inf,
        )
        assert again.id == first.id
        uow.trials.record_epochs(
            first.id,
            [
                {"epoch": 1, "metric": 0.5, "train_loss": 1.2, "wall_time_s": 0.1},
                {"epoch": 2, "metric": math.nan, "train_loss": math.inf, "wall_time_s": 0.2},
            ],
        )
        uow.trials.record_epochs(
            first.id, [{"epoch": 2, "metric": math.nan, "train_loss": math.inf, "wall_time_s": 0.2}]
        )
        uow.trials.record_flatness(
            first.id,
            top_eigenvalue=math.inf,
            eigen_converged=False,
            eigen_iterations=3,
            drift_from_start=1.5,
            drift_over_window=math.nan,
            method="power iteration",
        )
    with database.unit_of_work() as uow:
        trial = uow.trials.get(first.id)
        assert trial.status == "diverged" and trial.alpha == -5.0
        assert math.isnan(trial.final_metric) and trial.best_metric == -math.inf
        assert trial.steps == 14 and trial.final_train_loss == math.inf
        assert [e.epoch for e in trial.epochs] == [1, 2]
        assert math.isnan(trial.epochs[1].metric) and trial.epochs[1].train_loss == math.inf
        assert trial.flatness.top_eigenvalue == math.inf
        assert math.isnan(trial.flatness.drift_over_window)
        items, total = uow.trials.for_job(job.id)
        assert total == 1 and items[0].id == first.id


def test_trials_sort_and_filter(database):
    job = _job(database)
    study = _study(database, job)
    metrics = [0.3, 0.9, None, 0.5]
    with database.unit_of_work(write=True) as uow:
        for n, m in enumerate(metrics):
            uow.trials.record(
                study_id=study.id,
                job_id=job.id,
                number=n,
                status="completed" if m is not None else "pruned",
                final_metric=m,
            )
    with database.unit_of_work() as uow:
        desc, _ = uow.trials.for_job(job.id, sort="final_metric", order="desc")
        assert [t.number for t in desc] == [1, 3, 0, 2]  # missing metrics last
        pruned, total = uow.trials.for_job(job.id, status="pruned")
        assert total == 1 and pruned[0].number == 2
        page, total = uow.trials.for_job(job.id, limit=2, offset=2)
        assert total == 4 and [t.number for t in page] == [2, 3]
        assert uow.trials.counts_for_job(job.id) == {"completed": 3, "pruned": 1}


def test_progress_is_counted_from_the_trials(database):
    job = _job(database)
    statuses = [TrialStatus.COMPLETED, TrialStatus.FAILED, TrialStatus.RUNNING]
    with database.unit_of_work(write=True) as uow:
        study = uow.studies.ensure(job.id, 64, "alto", trials_total=4)
        trials = [
            uow.trials.record(study_id=study.id, job_id=job.id, number=n, status=status)
            for n, status in enumerate(statuses)
        ]
        uow.trials.record_epochs(trials[0].id, [{"epoch": 1}, {"epoch": 0, "metric": 0.5}])
        # An interrupted trial is run again as a new one: one more in the job's total.
        uow.jobs.refresh_progress(job.id, more_trials=1)
        uow.studies.refresh_progress(study.id)
    with database.unit_of_work() as uow:
        again = uow.jobs.get(job.id)
        assert (again.trials_done, again.trials_total) == (2, 5)
        assert uow.studies.get(study.id).trials_done == 2
        epochs = uow.trials.epochs_of([trials[0].id, trials[1].id])
        assert [e.epoch for e in epochs[trials[0].id]] == [0, 1] and epochs[trials[1].id] == []


def test_recommendations_newest_per_batch_size(database):
    job = _job(database)
    with database.unit_of_work(write=True) as uow:
        for bs, alpha in ((64, 0.5), (1024, -5.0), (64, 0.3)):
            uow.recommendations.add(
                task="digits-mlp",
                batch_size=bs,
                optimizer="alto",
                settings={"alpha": alpha, "beta1": 0.9, "lr": 1e-3},
                metric=0.9,
                n_trials=4,
                job_id=job.id,
            )
        uow.recommendations.add(
            task="digits-mlp",
            batch_size=64,
            optimizer="lamb",
            settings={"lr": 1e-3},
            metric=0.8,
            n_trials=4,
            job_id=job.id,
        )
    with database.unit_of_work() as uow:
        latest = uow.recommendations.latest("digits-mlp", "alto")
        assert [(r.batch_size, r.settings["alpha"]) for r in latest] == [(64, 0.3), (1024, -5.0)]
        assert len(uow.recommendations.latest("digits-mlp")) == 3
        assert len(uow.recommendations.for_job(job.id)) == 4


def test_catalogue_publish_is_an_upsert(database):
    publish(database)
    publish(database)
    with database.unit_of_work() as uow:
        assert [t.name for t in uow.catalogue.tasks()] == sorted(t.name for t in TASKS)
        assert uow.catalogue.task("digits-mlp").max_batch_size == 1024
        assert uow.catalogue.optimizer("alto").searched == ["lr", "alpha", "beta1"]
        assert len(uow.catalogue.optimizers()) == len(OPTIMIZERS)


def _waiting_on_a_lock(database) -> bool:
    with database.engine.connect() as connection:
        waiting = connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar()
    return waiting > 0


def test_workers_starting_together_both_publish(database):
    """Two workers publish the same new catalogue at once: the second waits for the first
    and replaces its rows instead of failing on the primary key."""
    failures: list[BaseException] = []

    def second() -> None:
        try:
            publish(database)
        except BaseException as exc:  # noqa: BLE001  (reported by the assert below)
            failures.append(exc)

    with database.unit_of_work(write=True) as uow:
        uow.catalogue.publish_tasks(TASKS, publisher="first")
        uow.catalogue.publish_optimizers(OPTIMIZERS)
        thread = threading.Thread(target=second)
        thread.start()
        if database.engine.dialect.name == "postgresql":
            # Commit only once the second publisher waits on the first one's new rows
            # (SQLite's single writer makes it wait at BEGIN instead: no race to set up).
            deadline = time.monotonic() + 30
            while not _waiting_on_a_lock(database):
                assert time.monotonic() < deadline, "the second publisher never blocked"
                time.sleep(0.02)
    thread.join(timeout=60)
    assert not thread.is_alive() and failures == []
    with database.unit_of_work() as uow:
        assert {t.published_by for t in uow.catalogue.tasks()} == {"tests"}
        assert len(uow.catalogue.optimizers()) == len(OPTIMIZERS)


def test_tokens_are_stored_hashed(database):
    with database.unit_of_work(write=True) as uow:
        plain, token = uow.tokens.create("ci", admin=True)
        with pytest.raises(Conflict):
            uow.tokens.create("ci")
    assert plain.startswith("alto_") and len(plain) > 40
    with database.unit_of_work() as uow:
        stored = uow.session.execute(text("SELECT token_hash, prefix FROM api_tokens")).all()
        assert plain not in {v for row in stored for v in row}
        assert uow.tokens.find(plain).id == token.id
        assert uow.tokens.find(plain + "x") is None
        assert uow.tokens.any_active()
    with database.unit_of_work(write=True) as uow:
        assert not uow.tokens.revoke("ci").active
    with database.unit_of_work() as uow:
        assert not uow.tokens.find(plain).active and not uow.tokens.any_active()


def test_sweep_groups_its_jobs_with_totals_and_owner_scope(database):
    with database.unit_of_work(write=True) as uow:
        _, alice = uow.tokens.create("alice")
        sweep = uow.sweeps.create(name="s", spec={"tasks": ["digits-mlp"]}, owner_token_id=alice.id)
        other = uow.sweeps.create(name="t", spec={})
        jobs = [uow.jobs.create(SPEC, sweep_id=sweep.id) for _ in range(3)]
        uow.jobs.create(SPEC)  # in no sweep
        uow.jobs.request_cancel(jobs[0].id)
        study = uow.studies.ensure(jobs[1].id, 64, "alto", trials_total=4)
        for number in range(3):
            uow.trials.record(
                study_id=study.id, job_id=jobs[1].id, number=number, status="completed"
            )
        uow.jobs.refresh_progress(jobs[1].id)
    with database.unit_of_work() as uow:
        assert uow.sweeps.get(sweep.id) == sweep and sweep.spec == {"tasks": ["digits-mlp"]}
        assert [j.id for j in uow.sweeps.jobs(sweep.id)] == [j.id for j in jobs]
        assert {j.sweep_id for j in uow.sweeps.jobs(sweep.id)} == {sweep.id}
        page, total = uow.jobs.list(sweep_id=sweep.id, limit=2)
        assert total == 3 and [j.id for j in page] == [jobs[2].id, jobs[1].id]
        totals = uow.sweeps.totals([sweep.id, other.id])
        assert totals[sweep.id].jobs == 3 and totals[other.id].jobs == 0
        assert totals[sweep.id].by_status == {
            "queued": 2,
            "running": 0,
            "succeeded": 0,
            "failed": 0,
            "cancelled": 1,
        }
        assert (totals[sweep.id].trials_done, totals[sweep.id].trials_total) == (3, 12)
        assert totals[sweep.id].progress == 0.25
        mine, n = uow.sweeps.list(owner_token_id=alice.id, all_owners=False)
        assert n == 1 and mine == [sweep]
        assert [s.id for s in uow.sweeps.list()[0]] == [other.id, sweep.id]
    # A sweep only groups: deleting it keeps the jobs (and their trials) and unlinks them.
    with database.unit_of_work(write=True) as uow:
        uow.session.execute(text("DELETE FROM sweeps WHERE id = :id"), {"id": sweep.id})
    with database.unit_of_work() as uow:
        assert [uow.jobs.get(j.id).sweep_id for j in jobs] == [None, None, None]


def test_sweep_idempotency_key_is_unique_per_owner(database):
    with database.unit_of_work(write=True) as uow:
        sweep = uow.sweeps.create(name="s", spec={}, idempotency_key="k", request_hash="h")
    with database.unit_of_work() as uow:
        assert uow.sweeps.by_idempotency_key(None, "k") == (sweep, "h")
        assert uow.sweeps.by_idempotency_key(None, "other") is None
    with pytest.raises(Conflict), database.unit_of_work(write=True) as uow:
        uow.sweeps.create(name="s", spec={}, idempotency_key="k")
    with database.unit_of_work(write=True) as uow:
        _, token = uow.tokens.create("bob")
        assert uow.sweeps.create(name="s", spec={}, idempotency_key="k", owner_token_id=token.id)
