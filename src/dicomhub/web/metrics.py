"""Prometheus metrics (text exposition at ``/metrics``).

Counted as they happen: HTTP requests by method, route and status.  Read from the index and
the listener at each scrape, so every process sharing the database reports the same archive:
instances stored, forwarding queue rows by state, worklist items by status, open DICOM
associations of this process.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dicomhub.index.worklist import count_by_status
from dicomhub.web.context import WebContext

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _ArchiveCollector(Collector):
    """Gauges read from the index at scrape time."""

    def __init__(self, context: WebContext) -> None:
        self.context = context

    def collect(self) -> Iterator[GaugeMetricFamily]:
        runtime = self.context.runtime
        stored = GaugeMetricFamily(
            "dicomhub_instances_stored", "SOP instances in the archive (index rows)."
        )
        stored.add_metric([], runtime.repository.count_instances())
        yield stored
        queue = GaugeMetricFamily(
            "dicomhub_forward_queue_items",
            "Forwarding queue rows by state (pending = queue depth).",
            labels=["state"],
        )
        for state, count in runtime.forward_queue.counts().items():
            queue.add_metric([state.value], count)
        yield queue
        worklist = GaugeMetricFamily(
            "dicomhub_worklist_items", "Worklist items by status.", labels=["status"]
        )
        for status, count in count_by_status(runtime.db).items():
            worklist.add_metric([status.value], count)
        yield worklist
        if self.context.associations is not None:
            associations = GaugeMetricFamily(
                "dicomhub_dicom_associations_active",
                "Open DICOM associations on this process's listener.",
            )
            associations.add_metric([], self.context.associations())
            yield associations


class Metrics:
    """The registry of one app and its HTTP request counter."""

    def __init__(self, context: WebContext) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "dicomhub_http_requests",
            "HTTP requests answered, by method, route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.registry.register(_ArchiveCollector(context))

    def exposition(self) -> bytes:
        """The text exposition of every metric."""
        return bytes(generate_latest(self.registry))


class MetricsMiddleware:
    """Counts every HTTP request once its status is known."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(
                scope.get("method", ""), template, str(status["code"])
            ).inc()
