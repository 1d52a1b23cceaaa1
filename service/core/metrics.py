"""Prometheus metrics: request counts and latency per route, jobs by status.

Each app owns its registry (no process-global state), so several apps, as in
tests, never collide. With several uvicorn workers each process reports its own
request figures; the job counts come from the database and agree everywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Metrics:
    def __init__(self, job_counts: Callable[[], dict[str, int]]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "alto_http_requests",
            "HTTP requests served.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "alto_http_request_duration_seconds",
            "HTTP request latency.",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.registry.register(_JobsCollector(job_counts))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _JobsCollector(Collector):
    def __init__(self, job_counts: Callable[[], dict[str, int]]) -> None:
        self.job_counts = job_counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "alto_jobs", "Jobs in the database by status.", labels=["status"]
        )
        for status, count in self.job_counts().items():
            family.add_metric([status], count)
        yield family


class MetricsMiddleware:
    """Times every HTTP request and labels it with its route template, not its raw path."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], label, str(status)).inc()
            self.metrics.latency.labels(scope["method"], label).observe(time.perf_counter() - start)
