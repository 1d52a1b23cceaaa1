from __future__ import annotations

from service.jobs.schemas import Page
from service.trials.repository import Trial


class TrialPage(Page):
    items: list[Trial]
