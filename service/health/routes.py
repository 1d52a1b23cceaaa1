from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.core.migrate import current_revision, head_revision
from service.deps import DatabaseDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready"}})
def readyz(database: DatabaseDep) -> JSONResponse:
    """The database answers and its schema is at the newest migration."""
    try:
        with database.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        current, head = current_revision(database.engine), head_revision()
    except Exception as exc:  # any failure to reach the database means "not ready"
        return JSONResponse({"status": "unavailable", "detail": str(exc)[:300]}, 503)
    body = {"status": "ok" if current == head else "migrate", "schema": current, "head": head}
    if current != head:
        body["detail"] = "run `alto db upgrade`"
        return JSONResponse(body, 503)
    return JSONResponse(body)


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text format: requests, latency, jobs by status."""
    return Response(
        request.app.state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
