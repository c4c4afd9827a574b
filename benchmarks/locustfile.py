"""Load test of ``finloom serve`` (locust): the probes, ``/health`` and ``/metrics``.

Bounded and local: the host must be 127.0.0.1 (or localhost), and a run without
``--run-time`` stops after ``FINLOOM_LOCUST_MAX_SECONDS`` (default 60). ``/health`` and
``/metrics`` send ``Authorization: Bearer $FINLOOM_SERVE_TOKEN`` when it is set. A 429 is
reported as a failure named ``429 rate limited``; ``benchmarks/bench_serve.py`` runs this file
against a server it starts and summarises the CSV::

    uv run locust -f benchmarks/locustfile.py --headless -u 20 -r 10 -t 30s \\
        --host http://127.0.0.1:9108

The mix per simulated client (think time 0.05-0.2 s): ``/health/live`` 4, ``/health/ready``
3 (a kubelet's probes), ``/metrics`` 2 (a Prometheus scrape), ``/health`` 1 (a dashboard).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import gevent
from locust import HttpUser, between, events, task
from locust.env import Environment

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_MAX_SECONDS = 60.0


@events.test_start.add_listener
def _bounded_and_local(environment: Environment, **_: Any) -> None:
    host = urlsplit(environment.host or "").hostname
    if host not in LOCAL_HOSTS:
        raise SystemExit(f"refusing to load {environment.host!r}: only 127.0.0.1 is load-tested")
    options = environment.parsed_options
    if (options is None or not options.run_time) and environment.runner is not None:
        limit = float(os.environ.get("FINLOOM_LOCUST_MAX_SECONDS", DEFAULT_MAX_SECONDS))
        gevent.spawn_later(limit, environment.runner.quit)


class ServeClient(HttpUser):
    wait_time = between(0.05, 0.2)

    def on_start(self) -> None:
        token = os.environ.get("FINLOOM_SERVE_TOKEN", "").strip()
        self.auth = {"Authorization": f"Bearer {token}"} if token else {}

    def _get(self, path: str, headers: dict[str, str] | None = None) -> None:
        with self.client.get(path, headers=headers, catch_response=True) as response:
            if response.status_code == 429:
                response.failure("429 rate limited")
            elif path == "/health/ready" and response.status_code == 503:
                response.success()  # an answer: the service is up, a dependency is not
            elif response.status_code >= 400:
                response.failure(f"HTTP {response.status_code}")

    @task(4)
    def live(self) -> None:
        self._get("/health/live")

    @task(3)
    def ready(self) -> None:
        self._get("/health/ready")

    @task(2)
    def metrics(self) -> None:
        self._get("/metrics", self.auth)

    @task(1)
    def health(self) -> None:
        self._get("/health", self.auth)
