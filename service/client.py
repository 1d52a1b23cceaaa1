"""A small REST client of the ALTO Tune API (what `alto jobs` and `alto sweep` use)."""

from __future__ import annotations

from typing import Any

import httpx


class ApiError(Exception):
    """A problem+json answer from the API, or no answer at all."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        detail = problem.get("detail") or problem.get("title") or "request failed"
        super().__init__(f"HTTP {status}: {detail}")


class Client:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0) -> None:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, f"/api/v1{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, {"detail": f"cannot reach {self.http.base_url}: {exc}"}) from exc
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text[:300]}
            raise ApiError(response.status_code, problem)
        return response.json()

    def submit_job(self, spec: dict[str, Any], idempotency_key: str | None = None) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.request("POST", "/jobs", json=spec, headers=headers)

    def jobs(self, **params: Any) -> Any:
        return self.request("GET", "/jobs", params={k: v for k, v in params.items() if v})

    def job(self, job_id: int) -> Any:
        return self.request("GET", f"/jobs/{job_id}")

    def cancel(self, job_id: int) -> Any:
        return self.request("POST", f"/jobs/{job_id}/cancel")

    def submit_sweep(self, spec: dict[str, Any], idempotency_key: str | None = None) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.request("POST", "/sweeps", json=spec, headers=headers)

    def sweeps(self, **params: Any) -> Any:
        return self.request("GET", "/sweeps", params=params)

    def sweep(self, sweep_id: int) -> Any:
        return self.request("GET", f"/sweeps/{sweep_id}")

    def cancel_sweep(self, sweep_id: int) -> Any:
        return self.request("POST", f"/sweeps/{sweep_id}/cancel")

    def trials(self, job_id: int, **params: Any) -> Any:
        return self.request("GET", f"/jobs/{job_id}/trials", params=params)

    def recommendation(self, task: str, batch_size: int, optimizer: str = "alto") -> Any:
        params = {"task": task, "batch_size": batch_size, "optimizer": optimizer}
        return self.request("GET", "/recommendations", params=params)
