"""The REST API through a real `alto serve` process (uvicorn, SQLite file)."""

from __future__ import annotations

import math

import pytest

from tests.service.catalogue import publish
from tests.service.server import running_server

PROBLEM = "application/problem+json"
SPEC = {"task": "digits-mlp", "batch_sizes": [64, 1024], "trials_per_study": 3}


def test_submit_returns_201_with_location(http):
    response = http.post("/api/v1/jobs", json=SPEC)
    assert response.status_code == 201, response.text
    job = response.json()
    assert response.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert job["status"] == "queued" and job["trials_total"] == 2 * 2 * 3
    assert job["spec"]["arms"] == [
        {"optimizer": "alto", "search": {}},
        {"optimizer": "lamb", "search": {}},
    ]
    detail = http.get(response.headers["location"]).json()
    assert detail["id"] == job["id"] and detail["studies"] == [] and detail["progress"] == 0


def test_idempotency_key(http):
    headers = {"Idempotency-Key": "retry-me"}
    first = http.post("/api/v1/jobs", json=SPEC, headers=headers)
    again = http.post("/api/v1/jobs", json=SPEC, headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other = http.post("/api/v1/jobs", json={**SPEC, "trials_per_study": 4}, headers=headers)
    assert other.status_code == 409 and other.headers["content-type"] == PROBLEM
    assert other.json()["errors"][0]["field"] == "header.Idempotency-Key"


def test_list_filter_paginate_and_cancel(http):
    ids = [
        http.post("/api/v1/jobs", json={**SPEC, "task": "charlm", "batch_sizes": [32]}).json()["id"]
        for _ in range(3)
    ]
    page = http.get("/api/v1/jobs", params={"task": "charlm", "limit": 2}).json()
    assert page["total"] >= 3 and len(page["items"]) == 2
    assert page["items"][0]["id"] == ids[-1]  # newest first
    cancelled = http.post(f"/api/v1/jobs/{ids[0]}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    again = http.post(f"/api/v1/jobs/{ids[0]}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    only = http.get("/api/v1/jobs", params={"status": "cancelled", "task": "charlm"}).json()
    assert [j["id"] for j in only["items"]] == [ids[0]]


def test_trials_pages_and_detail_with_non_finite_numbers(http, server):
    job_id = http.post("/api/v1/jobs", json=SPEC).json()["id"]
    with server.database.unit_of_work(write=True) as uow:
        study = uow.studies.ensure(job_id, 64, "alto", 3)
        for n, metric in enumerate([0.91, math.nan, 0.95]):
            trial = uow.trials.record(
                study_id=study.id,
                job_id=job_id,
                number=n,
                alpha=-1.0 * n,
                beta1=0.9,
                lr=1e-3,
                status="diverged" if math.isnan(metric) else "completed",
                final_metric=metric,
            )
            uow.trials.record_epochs(
                trial.id,
                [{"epoch": 1, "metric": metric, "train_loss": math.inf, "wall_time_s": 0.5}],
            )
    page = http.get(
        f"/api/v1/jobs/{job_id}/trials",
        params={"sort": "final_metric", "order": "desc", "limit": 2},
    ).json()
    assert page["total"] == 3 and [t["number"] for t in page["items"]] == [1, 2]
    diverged = http.get(f"/api/v1/jobs/{job_id}/trials", params={"status": "diverged"}).json()
    (bad,) = diverged["items"]
    assert bad["final_metric"] == "NaN"
    detail = http.get(f"/api/v1/trials/{bad['id']}").json()
    assert detail["epochs"] == [
        {"epoch": 1, "metric": "NaN", "train_loss": "Infinity", "wall_time_s": 0.5}
    ]
    job = http.get(f"/api/v1/jobs/{job_id}").json()
    assert job["studies"][0]["batch_size"] == 64
    assert job["trial_counts"] == {"completed": 2, "diverged": 1}


def test_recommendations_measured_interpolated_and_paper_defaults(http, server):
    with server.database.unit_of_work(write=True) as uow:
        for bs, alpha, beta1, lr in ((64, 0.5, 0.5, 1e-3), (256, -5.0, 0.9, 4e-3)):
            uow.recommendations.add(
                task="digits-mlp",
                batch_size=bs,
                optimizer="alto",
                settings={"alpha": alpha, "beta1": beta1, "lr": lr},
                metric=0.95,
                baseline_optimizer="lamb",
                baseline_metric=0.93,
                uplift=0.02,
                n_trials=8,
            )

    def ask(bs, optimizer="alto"):
        response = http.get(
            "/api/v1/recommendations",
            params={"task": "digits-mlp", "batch_size": bs, "optimizer": optimizer},
        )
        assert response.status_code == 200, response.text
        return response.json()

    measured = ask(64)
    assert measured["source"] == "measured" and measured["settings"]["alpha"] == 0.5
    assert measured["uplift"] == 0.02 and len(measured["evidence"]) == 1
    middle = ask(128)
    assert middle["source"] == "interpolated"
    assert [e["batch_size"] for e in middle["evidence"]] == [64, 256]
    assert middle["settings"]["lr"] == pytest.approx(2e-3)  # geometric midpoint
    c = middle["settings"]["alpha"] * (1 - middle["settings"]["beta1"])
    assert c == pytest.approx((0.5 * 0.5 + -5.0 * 0.1) / 2)  # c interpolated linearly
    assert abs(c) < 1
    default = ask(1024)
    assert default["source"] == "paper-default"
    assert default["settings"] == {"lr": 3e-3, "alpha": -5.0, "beta1": 0.99}
    assert default["evidence"][0]["batch_size"] == 256
    assert ask(512, "lamb")["settings"] == {"lr": 3e-3}


@pytest.mark.parametrize(
    ("body", "status", "field", "text"),
    [
        ({**SPEC, "task": "imagenet"}, 422, "task", "known tasks: charlm, digits-mlp"),
        ({**SPEC, "batch_sizes": [64, 4096]}, 422, "batch_sizes[1]", "maximum 1024"),
        (
            {
                **SPEC,
                "arms": [
                    {
                        "optimizer": "alto",
                        "search": {
                            "alpha": {"low": -50, "high": 0},
                            "beta1": {"low": 0.5, "high": 0.9},
                        },
                    }
                ],
            },
            422,
            "arms[0].search.alpha",
            "stability rule",
        ),
        ({**SPEC, "trials_per_study": 0}, 422, "trials_per_study", "greater than or equal to 1"),
        ({**SPEC, "trials_per_study": -3}, 422, "trials_per_study", "-3"),
        (
            {**SPEC, "arms": [{"optimizer": "rmsprop"}]},
            422,
            "arms[0].optimizer",
            "known: adamw, alto, lamb",
        ),
        (
            {**SPEC, "arms": [{"optimizer": "lamb", "search": {"alpha": {"low": -1, "high": 0}}}]},
            422,
            "arms[0].search.alpha",
            "does not search 'alpha'",
        ),
        ({**SPEC, "batch_sizes": [64, 64]}, 422, "batch_sizes", "unique"),
        ({**SPEC, "colour": "red"}, 422, "colour", "Extra inputs"),
        ({"batch_sizes": [64]}, 422, "task", "Field required"),
    ],
)
def test_invalid_jobs_are_problems_naming_the_field(http, body, status, field, text):
    response = http.post("/api/v1/jobs", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == status and problem["instance"] == "/api/v1/jobs"
    assert field in [e["field"] for e in problem["errors"]], problem
    assert text in problem["detail"], problem["detail"]


def test_malformed_json_oversized_body_and_unknown_paths(http):
    bad = http.post(
        "/api/v1/jobs", content=b'{"task": ', headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400 and bad.headers["content-type"] == PROBLEM
    assert bad.json()["title"] == "Malformed JSON"
    huge = http.post(
        "/api/v1/jobs", content=b"x" * (2 << 20), headers={"content-type": "application/json"}
    )
    assert huge.status_code == 413 and huge.headers["content-type"] == PROBLEM
    missing = http.get("/api/v1/jobs/999999")
    assert missing.status_code == 404 and missing.json()["errors"][0]["field"] == "path.job_id"
    nowhere = http.get("/api/v1/nothing")
    assert nowhere.status_code == 404 and nowhere.headers["content-type"] == PROBLEM
    wrong = http.get("/api/v1/jobs", params={"limit": 100000})
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "query.limit"
    rec = http.get("/api/v1/recommendations", params={"task": "mnist", "batch_size": 8})
    assert rec.status_code == 422 and "known tasks" in rec.json()["detail"]


def test_health_readiness_metrics_and_docs(http):
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz").json()
    assert ready["status"] == "ok" and ready["schema"] == ready["head"]
    http.get("/api/v1/tasks")
    text = http.get("/metrics").text
    assert 'alto_http_requests_total{method="GET"' in text
    assert "alto_http_request_duration_seconds_bucket" in text
    assert 'alto_jobs{status="queued"}' in text
    assert http.get("/docs").status_code == 200
    paths = http.get("/openapi.json").json()["paths"]
    assert "/api/v1/jobs" in paths and "/api/v1/recommendations" in paths
    tasks = http.get("/api/v1/tasks").json()
    assert [t["name"] for t in tasks] == ["charlm", "digits-mlp"]


# --- tokens required ----------------------------------------------------------------


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("secured"), require_token="true") as srv:
        publish(srv.database)
        with srv.database.unit_of_work(write=True) as uow:
            srv.tokens = {
                name: uow.tokens.create(name, admin=name == "root")[0]
                for name in ("alice", "bob", "root", "gone")
            }
            uow.tokens.revoke("gone")
        yield srv


def test_writes_and_reads_need_a_valid_token(secured):
    with secured.client() as anonymous:
        response = anonymous.post("/api/v1/jobs", json=SPEC)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        assert response.headers["content-type"] == PROBLEM
        assert anonymous.get("/api/v1/jobs").status_code == 401
        assert anonymous.get("/healthz").status_code == 200
    with secured.client("alto_not-a-token") as forged:
        assert forged.post("/api/v1/jobs", json=SPEC).status_code == 401
    with secured.client(secured.tokens["gone"]) as revoked:
        response = revoked.post("/api/v1/jobs", json=SPEC)
        assert response.status_code == 403 and "revoked" in response.json()["detail"]


def test_a_token_sees_and_cancels_only_its_own_jobs(secured):
    with (
        secured.client(secured.tokens["alice"]) as alice,
        secured.client(secured.tokens["bob"]) as bob,
        secured.client(secured.tokens["root"]) as root,
    ):
        job = alice.post("/api/v1/jobs", json=SPEC).json()
        bobs = bob.post("/api/v1/jobs", json=SPEC).json()
        assert bob.get(f"/api/v1/jobs/{job['id']}").status_code == 404
        assert bob.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 404
        assert [j["id"] for j in bob.get("/api/v1/jobs").json()["items"]] == [bobs["id"]]
        # The same Idempotency-Key is separate per token.
        key = {"Idempotency-Key": "same"}
        a = alice.post("/api/v1/jobs", json=SPEC, headers=key).json()["id"]
        b = bob.post("/api/v1/jobs", json=SPEC, headers=key).json()["id"]
        assert a != b
        seen = {j["id"] for j in root.get("/api/v1/jobs", params={"limit": 500}).json()["items"]}
        assert {job["id"], bobs["id"]} <= seen
        assert root.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 202


def test_public_reads(tmp_path):
    with running_server(tmp_path, require_token="true", public_reads="true") as srv:
        with srv.client() as anonymous:
            assert anonymous.get("/api/v1/jobs").status_code == 200
            assert anonymous.post("/api/v1/jobs", json=SPEC).status_code == 401
