"""The FastAPI application: ``create_app(settings)`` builds it, nothing reads the environment."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from service.catalogue.routes import router as catalogue_router
from service.core.config import Settings
from service.core.metrics import Metrics, MetricsMiddleware
from service.core.problems import BodySizeLimit, install_problem_handlers
from service.dashboard.routes import router as dashboard_router
from service.health.routes import router as health_router
from service.jobs.routes import router as jobs_router
from service.recommendations.routes import router as recommendations_router
from service.recommendations.service import AnswerCache
from service.storage import Database
from service.studies.routes import router as studies_router
from service.sweeps.routes import router as sweeps_router
from service.trials.routes import router as trials_router

API_PREFIX = "/api/v1"


def create_app(settings: Settings, database: Database | None = None) -> FastAPI:
    database = database or Database.from_settings(settings)
    app = FastAPI(
        title="ALTO Tune",
        version="0.1.0",
        description="Tuning jobs for the ALTO optimizer (adaptor E on Lamb) and the alpha, "
        "beta1 and lr it recommends per task and batch size.",
    )
    app.state.settings = settings
    app.state.database = database

    def job_counts() -> dict[str, int]:
        with database.unit_of_work() as uow:
            return uow.jobs.counts_by_status()

    app.state.metrics = Metrics(job_counts)
    app.state.answer_cache = AnswerCache(settings.recommendation_cache_seconds)
    install_problem_handlers(app)
    api = APIRouter(prefix=API_PREFIX)
    for router in (
        jobs_router,
        sweeps_router,
        trials_router,
        studies_router,
        recommendations_router,
        catalogue_router,
    ):
        api.include_router(router)
    app.include_router(api)
    app.include_router(health_router)
    app.include_router(dashboard_router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app


def app_from_environment() -> FastAPI:
    """uvicorn's factory (``--factory``): the one place where settings come from the environment."""
    return create_app(Settings())
