"""What the API answers about jobs."""

from __future__ import annotations

from pydantic import BaseModel

from service.jobs.repository import Job
from service.studies.repository import Study


class JobDetail(Job):
    studies: list[Study]
    trial_counts: dict[str, int]


class Page(BaseModel):
    total: int
    limit: int
    offset: int


class JobPage(Page):
    items: list[Job]


def job_detail(job: Job, studies: list[Study], counts: dict[str, int]) -> JobDetail:
    return JobDetail(**dict(job), studies=studies, trial_counts=counts)
