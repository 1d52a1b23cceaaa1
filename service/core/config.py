"""One typed settings object, read once at the edge and passed in (never read at import)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """ALTO Tune settings; every field can be set as ``ALTO_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="ALTO_", extra="ignore")

    data_dir: Path = Field(Path(".alto"), description="Where the default SQLite database lives.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db. "
        "Default: a SQLite file in data_dir.",
    )
    host: str = Field("127.0.0.1", description="Address alto serve listens on.")
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes.")
    require_token: bool = Field(
        False,
        description="Require an API token for writes even on loopback "
        "(always required when listening beyond loopback).",
    )
    public_reads: bool = Field(
        False, description="Let reads through without a token when tokens are required."
    )
    max_body_bytes: int = Field(1 << 20, ge=1024, description="Largest accepted request body.")
    lease_seconds: float = Field(30.0, gt=0, description="How long a worker's job lease lasts.")
    sqlite_busy_timeout_ms: int = Field(10_000, ge=0)
    # --- workers -----------------------------------------------------------------
    datasets_dir: Path | None = Field(
        None, description="Where tasks read and cache their data. Default: data_dir/datasets."
    )
    optuna_storage: str | None = Field(
        None,
        description="Optuna RDB URL where each study is mirrored for optuna-dashboard. "
        "Default: a SQLite file data_dir/optuna.db (Optuna's tables cannot share our database).",
    )
    ray_address: str | None = Field(
        None, description="An existing Ray cluster (also read from RAY_ADDRESS). Default: local."
    )
    ray_num_cpus: int | None = Field(None, ge=1, description="CPUs of the embedded local Ray.")
    ray_storage: str | None = Field(
        None,
        description="Where Ray Tune keeps trial checkpoints: on a multi-node cluster a path "
        "every node shares (NFS) or a bucket URI (s3://...). Default: data_dir/ray_results.",
    )
    worker_poll_seconds: float = Field(2.0, gt=0, description="How often an idle worker looks.")
    worker_concurrent_jobs: int = Field(
        1,
        ge=1,
        le=64,
        description="Jobs one worker runs at once (more than one: each in its own process).",
    )
    job_max_abandoned: int = Field(
        3,
        ge=1,
        description="A job whose worker or job process dies under it is resumed, until "
        "this has happened this many times: then it is failed.",
    )
    heartbeat_seconds: float | None = Field(
        None, gt=0, description="Lease renewal period. Default: a third of lease_seconds."
    )
    recommendation_cache_seconds: float = Field(
        2.0, ge=0, description="How long an answer of GET /recommendations is reused (0: never)."
    )

    @property
    def url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'alto.db').resolve()}"

    @property
    def datasets_path(self) -> Path:
        return (self.datasets_dir or self.data_dir / "datasets").resolve()

    @property
    def optuna_url(self) -> str:
        return self.optuna_storage or f"sqlite:///{(self.data_dir / 'optuna.db').resolve()}"

    @property
    def ray_storage_path(self) -> str:
        return self.ray_storage or str((self.data_dir / "ray_results").resolve())

    @property
    def heartbeat_period(self) -> float:
        return self.heartbeat_seconds or self.lease_seconds / 3

    @property
    def loopback_only(self) -> bool:
        return is_loopback(self.host)

    @property
    def tokens_required(self) -> bool:
        return self.require_token or not self.loopback_only


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redacted(url: str) -> str:
    """A database URL fit for logs and reports: the password hidden."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: say nothing of it
        return "<unparsable database URL>"
