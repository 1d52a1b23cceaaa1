"""docker-compose.yml: valid under the Compose Specification, and wired together.

The schema is the compose-spec JSON schema that check-jsonschema vendors (its builtin
`vendor.compose-spec`), so the check needs neither Docker nor the network.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from tests.deploy.image import (
    COMPOSE_FILE,
    ENTRYPOINT_SCRIPT,
    TEST_ENV,
    compose,
    compose_raw,
    env_example,
    environment,
    final_stage,
    service,
)

IMAGE_SERVICES = {"migrate", "api", "ray-head", "ray-worker"}


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
        + [str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_file_is_valid_under_the_compose_specification() -> None:
    result = validate(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_compose_file(tmp_path: Path) -> None:
    # Guards the check above against passing vacuously (a schema that accepts anything).
    broken = compose_raw()
    broken["services"]["api"]["depends_on"]["migrate"]["condition"] = "service_finished"
    broken["services"]["api"]["helthcheck"] = {"test": ["CMD", "true"]}
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    result = validate(path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "service_finished" in result.stdout and "helthcheck" in result.stdout


def entrypoint_roles() -> set[str]:
    return set(re.findall(r"^\s+([a-z-]+)\)$", ENTRYPOINT_SCRIPT.read_text(), re.M))


def test_every_service_of_the_image_runs_a_role_of_the_entrypoint() -> None:
    services = {n for n, s in compose()["services"].items() if "build" in s}
    assert services == IMAGE_SERVICES
    roles = entrypoint_roles()
    for name in services:
        spec = service(name)
        assert spec["image"] == service("api")["image"], name
        assert spec["build"]["context"] == "."
        assert spec["build"]["args"]["TORCH_VARIANT"] == TEST_ENV["TORCH_VARIANT"], name
        assert spec["command"][0] in roles, (name, spec["command"])
    assert {service(n)["command"][0] for n in services} == {
        "migrate",
        "api",
        "ray-head",
        "ray-worker",
    }


def test_database_users_reach_the_postgres_service_with_its_credentials() -> None:
    postgres = environment("postgres")
    for name in ("migrate", "api", "ray-head"):
        url = make_url(environment(name)["ALTO_DATABASE_URL"])
        assert url.drivername == "postgresql+psycopg", name
        assert (url.host, url.port) == ("postgres", 5432), name
        assert url.username == postgres["POSTGRES_USER"], name
        assert url.password == postgres["POSTGRES_PASSWORD"], name
        assert url.database == postgres["POSTGRES_DB"], name
    # Optuna's tables clash with ours: its mirror lives in a database of its own, which
    # the postgres init script creates under the name the dispatcher is given.
    optuna = make_url(environment("ray-head")["ALTO_OPTUNA_STORAGE"])
    assert optuna.host == "postgres" and optuna.database == postgres["OPTUNA_DB"]
    assert optuna.database != postgres["POSTGRES_DB"]
    mounts = service("postgres")["volumes"]
    assert "./docker/postgres-init:/docker-entrypoint-initdb.d:ro" in mounts
    # The GPU worker runs trials only: it gets no database credentials.
    assert not any(k.startswith(("ALTO_", "POSTGRES_")) for k in environment("ray-worker"))


def test_postgres_keeps_its_data_and_reports_health() -> None:
    postgres = service("postgres")
    volume, _, path = postgres["volumes"][0].partition(":")
    assert path == "/var/lib/postgresql/data" and volume in compose()["volumes"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


def test_depends_on_waits_for_health_and_for_the_migration() -> None:
    image_has_healthcheck = any(i.name == "HEALTHCHECK" for i in final_stage())
    for name, spec in compose()["services"].items():
        for target, condition in spec.get("depends_on", {}).items():
            condition = condition["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in service(target) or (
                    target in IMAGE_SERVICES and image_has_healthcheck
                ), f"{name} waits for {target}, which has no health check"
            else:
                assert (target, condition) == ("migrate", "service_completed_successfully")
    for name in ("api", "ray-head"):
        depends = service(name)["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}
        assert depends["postgres"] == {"condition": "service_healthy"}
    assert service("migrate")["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    # A one-off: restarting it after it finished would re-run it for ever.
    assert service("migrate")["restart"] == "no"
    assert service("ray-worker")["depends_on"] == {"ray-head": {"condition": "service_healthy"}}


def test_api_listens_beyond_loopback_on_its_published_port() -> None:
    env = environment("api")
    assert env["ALTO_HOST"] == "0.0.0.0"
    published = [p.rsplit(":", 1)[1] for p in service("api")["ports"]]
    assert published == [env["ALTO_PORT"]]


def test_the_gpu_worker_reserves_gpus_and_joins_the_head() -> None:
    worker = service("ray-worker")
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    # Ray offers trials as many GPUs as the container was given.
    assert f"--num-gpus={device['count']}" in environment("ray-worker")["RAY_START_ARGS"]
    head, worker_env = environment("ray-head"), environment("ray-worker")
    assert worker_env["RAY_HEAD_ADDRESS"] == f"ray-head:{head['RAY_PORT']}"
    for env in (head, worker_env):
        assert env["RAY_AUTH_MODE"] == "token"
        assert env["RAY_AUTH_TOKEN"] == head["RAY_AUTH_TOKEN"]
    assert "gpu" in worker.get("profiles", [])


def test_ray_nodes_share_the_data_directory_at_the_same_path() -> None:
    # Trials run on any node and read the data set path and write the checkpoints the
    # dispatcher on the head chose.
    head = environment("ray-head")
    mounts = {n: set(service(n)["volumes"]) for n in ("ray-head", "ray-worker")}
    assert mounts["ray-head"] == mounts["ray-worker"]
    (mount,) = mounts["ray-head"]
    volume, _, path = mount.partition(":")
    assert volume in compose()["volumes"] and path == head["ALTO_DATA_DIR"]
    assert head["ALTO_DATASETS_DIR"].startswith(path + "/")
    for name in ("ray-head", "ray-worker"):
        assert service(name)["shm_size"], f"{name}: Ray's object store needs /dev/shm"


def test_env_example_documents_every_variable_the_compose_file_reads() -> None:
    text = COMPOSE_FILE.read_text().replace("$$", "")
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    documented = env_example()
    assert used <= set(documented), sorted(used - set(documented))


@pytest.mark.parametrize("secret", ["POSTGRES_PASSWORD", "RAY_AUTH_TOKEN"])
def test_compose_refuses_to_run_without_a_secret(secret: str) -> None:
    # ${VAR:?...}: no well-known default password or token, and .env.example leaves it empty.
    assert env_example()[secret] == ""
    with pytest.raises(KeyError, match=secret):
        compose(TEST_ENV | {secret: ""})
