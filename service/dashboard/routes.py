from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)

Id = Annotated[int, PathParam(ge=1, le=2**31 - 1)]


def plotly_js() -> Path:
    return Path(str(files("plotly") / "package_data" / "plotly.min.js"))


@router.get("/favicon.ico")
def favicon() -> Response:
    return Response(status_code=204)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard")


@router.get("/dashboard", response_class=HTMLResponse)
def overview_page(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "overview.html", {"page": "overview"})


@router.get("/dashboard/jobs", response_class=HTMLResponse)
def jobs_page(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "jobs.html", {"page": "jobs"})


@router.get("/dashboard/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: Id) -> HTMLResponse:
    return templates.TemplateResponse(request, "job.html", {"page": "jobs", "job_id": job_id})


@router.get("/dashboard/sweeps/{sweep_id}", response_class=HTMLResponse)
def sweep_page(request: Request, sweep_id: Id) -> HTMLResponse:
    return templates.TemplateResponse(request, "sweep.html", {"page": "jobs", "sweep_id": sweep_id})


@router.get("/dashboard/studies/{study_id}", response_class=HTMLResponse)
def study_page(request: Request, study_id: Id) -> HTMLResponse:
    return templates.TemplateResponse(request, "study.html", {"page": "jobs", "study_id": study_id})


@router.get("/static/vendor/plotly.min.js")
def plotly() -> FileResponse:
    return FileResponse(
        plotly_js(),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    # Only our own files: the name is looked up, never joined into a path blindly.
    allowed = {p.name: p for p in (HERE / "static").iterdir() if p.is_file()}
    if name not in allowed:
        from fastapi import HTTPException

        raise HTTPException(404, f"no static file {name!r}")
    media = "text/css" if name.endswith(".css") else "text/javascript"
    return FileResponse(
        allowed[name], media_type=media, headers={"Cache-Control": "public, max-age=300"}
    )
