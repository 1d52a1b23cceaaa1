"""Planning is pure: a job spec and the trials an earlier attempt left in, plans out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.jobs.spec import ArmSpec, JobSpec, Resources, SearchRange
from service.trials.repository import TrialEpoch
from tests.workers.test_scoring import trial
from workers import planning, search
from workers.tasks import get_task
from workers.trainable import TrialConfig

TASK = get_task("digits-mlp")


def spec(**kw) -> JobSpec:
    return JobSpec(task="digits-mlp", batch_sizes=[64], trials_per_study=6, **kw)


def plan_for(job_spec: JobSpec, trials=(), epochs_of=None, known=(), baseline=(), batch_size=64):
    state = planning.study_state(list(trials), job_spec.seeds[0])
    return planning.study_plan(
        job_id=3,
        spec=job_spec,
        task=TASK,
        data_dir="/data",
        batch_size=batch_size,
        arm=job_spec.arms[0],
        state=state,
        epochs_of=epochs_of or {},
        known=list(known),
        baseline=list(baseline),
    )


def test_a_new_study_runs_its_whole_budget_from_the_paper_defaults():
    plan = plan_for(spec())
    assert plan.name == "job3-bs64-alto" and plan.num_trials == 6 and plan.first_number == 0
    assert plan.trial == TrialConfig(
        task="digits-mlp", batch_size=64, optimizer="alto", epochs=TASK.default_epochs,
        seed=0, data_dir="/data",
    )  # fmt: skip
    assert plan.prior == [] and len(plan.warm_start) == 1  # the paper's setting only
    assert plan.early_stopping.enabled


def test_a_resumed_study_keeps_finished_trials_and_reruns_interrupted_ones():
    trials = [
        trial(0, 0.9),
        trial(1, 0.5, status="pruned"),
        trial(2, None, status="running"),  # its worker died
        trial(3, 0.8, seed=9),  # a re-evaluation, not part of the search
    ]
    epochs = {101: [TrialEpoch(epoch=1, metric=0.4, train_loss=1.0, wall_time_s=1.0)]}
    state = planning.study_state(trials, first_seed=0)
    assert [t.number for t in state.interrupted] == [2]
    assert state.next_number == 4  # numbers are never reused
    plan = plan_for(spec(), trials, epochs)
    assert plan.num_trials == 6 - 2 and plan.first_number == 4
    assert [(p.objective, p.intermediate) for p in plan.prior] == [(0.9, {}), (None, {1: 0.4})]


def test_known_settings_at_other_batch_sizes_warm_start_the_search():
    known = [(32, {"lr": 0.02, "alpha": -1.0, "beta1": 0.9})]
    assert len(plan_for(spec(), known=known).warm_start) == 2


def test_an_adaptor_arm_also_starts_from_the_paper_alpha_at_the_baselines_lr():
    """The paper's alpha and beta1 at the task's default lr, and again at the lr the
    baseline found best at the nearest batch size (the same batch size first)."""
    baseline = [(64, {"lr": 0.003}), (4096, {"lr": 0.05})]
    plan = plan_for(spec(), baseline=baseline)
    hypers = [plan.space.hyper(p) for p in plan.warm_start]
    paper = search.paper_hyper(64, TASK)
    assert [h["lr"] for h in hypers] == [pytest.approx(TASK.default_lr), pytest.approx(0.003)]
    for h in hypers:
        assert h["alpha"] == pytest.approx(paper["alpha"], rel=1e-6)
        assert h["beta1"] == pytest.approx(paper["beta1"], rel=1e-6)
    at_large = plan_for(spec(), baseline=baseline, batch_size=2048)
    assert at_large.space.hyper(at_large.warm_start[1])["lr"] == pytest.approx(0.05)
    lamb = plan_for(spec(arms=[ArmSpec(optimizer="lamb")]), baseline=baseline)
    assert len(lamb.warm_start) == 1  # the baseline itself searches lr alone


def test_overrides_reach_the_search_space():
    arm = ArmSpec(optimizer="lamb", search={"lr": SearchRange(low=1e-3, high=1e-2, log=True)})
    plan = plan_for(spec(arms=[arm]))
    lr = plan.space.distributions["lr"]
    assert (lr.low, lr.high, lr.log) == (1e-3, 1e-2, True)


@given(st.integers(1, 64), st.floats(0.25, 8), st.one_of(st.none(), st.integers(1, 16)))
def test_concurrency_fills_the_cluster_unless_the_spec_caps_it(cluster, cpu, cap):
    got = planning.resources(spec(resources=Resources(cpu=cpu), max_concurrent_trials=cap), cluster)
    assert got.cpus == cpu
    assert got.max_concurrent == (cap if cap is not None else max(1, int(cluster // cpu)))


def test_reevaluation_runs_only_what_has_not_run_with_the_seed():
    search = [trial(0, 0.9, lr=0.1), trial(1, 0.8, lr=0.2)]
    plan = plan_for(spec(seeds=[0, 5], reevaluate_top=2))
    again = planning.reevaluation_plan(plan, search, search, seed=5)
    assert again is not None
    assert again.name == "job3-bs64-alto-seed5" and again.trial.seed == 5
    assert again.warm_start == [{"lr": 0.1}, {"lr": 0.2}] and again.num_trials == 2
    assert again.first_number == 2 and not again.early_stopping.enabled
    done = [*search, trial(2, 0.85, seed=5, lr=0.1)]
    again = planning.reevaluation_plan(plan, done, search, seed=5)
    assert again is not None and again.warm_start == [{"lr": 0.2}]
    done.append(trial(3, 0.7, seed=5, lr=0.2))
    assert planning.reevaluation_plan(plan, done, search, seed=5) is None


def test_trial_config_round_trips_and_refuses_unknown_keys():
    config = plan_for(spec()).trial
    assert TrialConfig.decode(config.encode()) == config
    with pytest.raises(ValueError, match="space_mode"):
        TrialConfig.decode({**config.encode(), "space_mode": "c"})
