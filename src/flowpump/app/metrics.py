"""``/metrics`` (Prometheus text format) and ``/status`` (JSON) for a running application.

Needs the extras ``http`` (aiohttp) and ``app`` (prometheus-client). Figures are read from
``app.status()`` at scrape time, so they are the same as ``/status`` and the run reports:
per stage ``flowpump_stage_*_total`` counters (labels ``pipeline``, ``stage``, and the plan
``group`` and ``role`` that make two stages of one label distinct; events in/out, filtered, dead-lettered, seconds
working, seconds blocked by backpressure), per pipeline the histogram
``flowpump_pipeline_latency_seconds`` (seconds from a source reading an event to the sinks
having written it; one observation per event), restarts and state, and lookups and connections.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import msgspec

from .connections import _require

if TYPE_CHECKING:
    from aiohttp import web
    from prometheus_client.registry import Collector

    from .application import Application

__all__ = ["collector", "metrics_text", "serve"]

_PIPELINE_STATES = ("pending", "running", "restarting", "finished", "failed", "stopped")


def collector(app: Application[Any]) -> Collector:
    """A prometheus-client collector that reads ``app.status()`` on each scrape."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
    from prometheus_client.registry import Collector

    class _AppCollector(Collector):
        def collect(self) -> Iterator[Metric]:
            st = app.status()
            counters = {
                name: CounterMetricFamily(
                    f"flowpump_stage_{name}", help_, labels=["pipeline", "stage", "group", "role"]
                )
                for name, help_ in (
                    ("events_in", "Events a stage received"),
                    ("events_out", "Events a stage emitted (or wrote, for a sink)"),
                    ("filtered", "Events a stage filtered out"),
                    ("dead_lettered", "Events a stage dead-lettered"),
                    ("seconds", "Seconds a stage spent working"),
                    ("blocked_seconds", "Seconds a stage's task waited for room downstream (backpressure)"),
                )
            }
            latency = HistogramMetricFamily(
                "flowpump_pipeline_latency_seconds",
                "Seconds from a source reading an event to the sinks having written it",
                labels=["pipeline"],
            )
            restarts = CounterMetricFamily(
                "flowpump_pipeline_restarts", "Restarts after a failure", labels=["pipeline"]
            )
            state = GaugeMetricFamily(
                "flowpump_pipeline_state", "1 for the pipeline's current state", labels=["pipeline", "state"]
            )
            for p in st.pipelines.values():
                restarts.add_metric([p.name], p.restarts)
                lat, cumulative, buckets = p.latency, 0, []
                for bound, n in zip((*lat.bounds, float("inf")), lat.counts, strict=True):
                    cumulative += n
                    buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
                latency.add_metric([p.name], buckets, lat.sum)
                for s in _PIPELINE_STATES:
                    state.add_metric([p.name, s], 1.0 if p.state == s else 0.0)
                for stage in p.stages:
                    for name, fam in counters.items():
                        fam.add_metric([p.name, stage.label, str(stage.group), stage.role], getattr(stage, name))
            size = GaugeMetricFamily("flowpump_lookup_size", "Entries in a lookup", labels=["lookup"])
            loaded = GaugeMetricFamily(
                "flowpump_lookup_loaded_timestamp_seconds", "Last successful refresh", labels=["lookup"]
            )
            failures = CounterMetricFamily("flowpump_lookup_refresh_failures", "Failed refreshes", labels=["lookup"])
            for lk in st.lookups.values():
                size.add_metric([lk.name], lk.size)
                loaded.add_metric([lk.name], lk.loaded_at or 0.0)
                failures.add_metric([lk.name], lk.failures)
            up = GaugeMetricFamily("flowpump_connection_open", "1 if the connection is open", labels=["connection"])
            for c in st.connections.values():
                up.add_metric([c.name], 1.0 if c.open else 0.0)
            yield from counters.values()
            yield from (latency, restarts, state, size, loaded, failures, up)

    return _AppCollector()


def metrics_text(app: Application[Any]) -> bytes:
    """The Prometheus exposition of ``app``'s metrics."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector(app))
    return generate_latest(registry)


def _host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        msg = f"--http {address!r}: expected HOST:PORT such as 127.0.0.1:8080 (or :8080 for all interfaces)"
        raise ValueError(msg)
    return host or "0.0.0.0", int(port)  # ":8080" asks for all interfaces


async def serve(app: Application[Any], address: str) -> web.AppRunner:
    """Serve ``/metrics`` and ``/status`` on ``address`` (``host:port``); ``await runner.cleanup()`` stops."""
    _require("aiohttp", "http", "serving /metrics and /status")
    _require("prometheus_client", "app", "serving /metrics")
    from aiohttp import web
    from prometheus_client import CONTENT_TYPE_LATEST

    host, port = _host_port(address)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=metrics_text(app), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def status(_: web.Request) -> web.Response:
        return web.Response(body=msgspec.json.encode(app.status()), content_type="application/json")

    web_app = web.Application()
    web_app.router.add_get("/metrics", metrics)
    web_app.router.add_get("/status", status)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner
