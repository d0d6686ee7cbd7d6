"""Prometheus metrics (prometheus_client), one registry per service so tests can run
several services in one process. Counters are fed by the loop, the scheduler and the
webhook endpoint; gauges are read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATUSES = ("pending", "building", "healthy", "degraded", "failed", "removing")


@dataclass(frozen=True)
class Gauges:
    """What the scrape reads, as callables: the service hands them in, so this module
    knows nothing of the service."""

    statuses: Callable[[], Iterable[str]]  # one status per environment
    queue_depth: Callable[[], int]
    schedule_entries: Callable[[], int]
    provider_errors: Callable[[], int]


class _Scrape(Collector):
    """Values read when Prometheus scrapes."""

    def __init__(self, gauges: Gauges) -> None:
        self.gauges = gauges

    def collect(self):  # type: ignore[no-untyped-def]
        by_status = GaugeMetricFamily(
            "hoody_environments", "Environments by status", labels=["status"]
        )
        counts: dict[str, int] = {}
        for status in self.gauges.statuses():
            counts[status] = counts.get(status, 0) + 1
        for status in STATUSES:
            by_status.add_metric([status], counts.get(status, 0))
        yield by_status
        yield GaugeMetricFamily(
            "hoody_queue_depth", "Repos waiting for a pass", value=self.gauges.queue_depth()
        )
        yield GaugeMetricFamily(
            "hoody_schedule_entries", "Cron entries scheduled", value=self.gauges.schedule_entries()
        )
        yield GaugeMetricFamily(
            "hoody_provider_api_errors",
            "Provider API calls that failed",
            value=self.gauges.provider_errors(),
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.passes = Counter(
            "hoody_reconcile_passes", "Reconcile passes", ["repo", "result"], registry=r
        )
        self.pass_seconds = Histogram(
            "hoody_reconcile_duration_seconds",
            "Duration of reconcile passes",
            ["repo"],
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self.actions = Counter("hoody_actions", "Actions applied", ["op", "result"], registry=r)
        self.firings = Counter(
            "hoody_cron_firings", "Cron runs by final status", ["status"], registry=r
        )
        self.lateness = Histogram(
            "hoody_cron_lateness_seconds",
            "Firing time minus scheduled time",
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30),
        )
        self.job_seconds = Histogram(
            "hoody_job_duration_seconds",
            "Cron job duration",
            registry=r,
            buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600),
        )
        self.deliveries = Counter(
            "hoody_webhook_deliveries", "Webhook deliveries", ["provider", "result"], registry=r
        )

    def attach(self, gauges: Gauges) -> None:
        self.registry.register(_Scrape(gauges))

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
