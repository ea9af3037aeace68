"""Prometheus metrics, counted cheaply and exported at scrape time.

The hot paths only bump plain integers on :class:`Stats` (no
prometheus-client call per message); :class:`Collector` turns them, and what
the hub and connections hold, into metric families when ``/metrics`` is
scraped.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector as _Collector

if TYPE_CHECKING:
    from .transport.server import WirehubServer

__all__ = ["Collector", "Stats"]

#: publish-to-delivery latency buckets, in seconds
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Stats:
    """Counters the node and transport bump as they work."""

    __slots__ = ("bytes_in", "close_codes", "conflated", "deliveries",
                 "dropped", "errors", "latency_buckets", "latency_count", "latency_sum",
                 "ops_in", "publications")

    def __init__(self) -> None:
        self.ops_in: Counter[str] = Counter()  #: requests by op
        self.bytes_in = 0
        self.deliveries = 0  #: messages handed to connections (one per subscriber)
        self.publications = 0  #: publications this node fanned out
        self.errors: Counter[str] = Counter()  #: error frames by code
        self.close_codes: Counter[int] = Counter()
        self.dropped = 0  #: by closed connections (live ones are read at scrape)
        self.conflated = 0
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.latency_count = 0

    def delivered(self, ts_ms: int, subscribers: int) -> None:
        """One publication fanned out to ``subscribers``."""
        self.publications += 1
        self.deliveries += subscribers
        if ts_ms:
            latency = max(0.0, time.time() - ts_ms / 1000)
            self.latency_buckets[bisect.bisect_left(LATENCY_BUCKETS, latency)] += 1
            self.latency_sum += latency
            self.latency_count += 1


class Collector(_Collector):
    """Reads a running server at scrape time."""

    def __init__(self, server: WirehubServer) -> None:
        self.server = server

    def collect(self) -> Iterator[Any]:
        server = self.server
        node, stats = server.node, server.node.stats
        conns = list(server.connections)
        yield GaugeMetricFamily("wirehub_connections", "open WebSocket connections on /ws",
                                value=len(conns))
        yield GaugeMetricFamily("wirehub_subscriptions", "subscriptions on this node",
                                value=node.hub.subscription_count)
        yield GaugeMetricFamily("wirehub_channels", "channels with local subscribers",
                                value=len(node.hub.channels()))
        ops = CounterMetricFamily("wirehub_messages_in", "requests received, by op",
                                  labels=["op"])
        for op, n in sorted(stats.ops_in.items()):
            ops.add_metric([op], n)
        yield ops
        yield CounterMetricFamily("wirehub_bytes_in", "payload bytes received",
                                  value=stats.bytes_in)
        yield CounterMetricFamily("wirehub_deliveries", "messages delivered to subscribers",
                                  value=stats.deliveries)
        yield CounterMetricFamily("wirehub_bytes_out", "payload bytes of deliveries",
                                  value=node.hub.bytes_out)
        yield CounterMetricFamily("wirehub_publications", "publications fanned out here",
                                  value=stats.publications)
        errors = CounterMetricFamily("wirehub_errors", "error frames sent, by code",
                                     labels=["code"])
        for code, n in sorted(stats.errors.items()):
            errors.add_metric([code], n)
        yield errors
        closes = CounterMetricFamily("wirehub_closes", "closed connections, by close code",
                                     labels=["code"])
        for code, n in sorted(stats.close_codes.items()):
            closes.add_metric([str(code)], n)
        yield closes
        yield GaugeMetricFamily("wirehub_outbound_queued_bytes",
                                "bytes waiting in outbound queues, all connections",
                                value=sum(c.queued_bytes for c in conns))
        yield GaugeMetricFamily("wirehub_outbound_queued_bytes_max",
                                "the deepest outbound queue",
                                value=max((c.queued_bytes for c in conns), default=0))
        yield CounterMetricFamily("wirehub_dropped", "messages dropped (drop_oldest policy)",
                                  value=stats.dropped + sum(c.dropped for c in conns))
        yield CounterMetricFamily("wirehub_conflated",
                                  "messages replaced by a newer one before being sent",
                                  value=stats.conflated + sum(c.conflated for c in conns))
        buckets, acc = [], 0
        for bound, n in zip((*LATENCY_BUCKETS, float("inf")), stats.latency_buckets,
                            strict=True):
            acc += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), acc))
        yield HistogramMetricFamily(
            "wirehub_delivery_latency_seconds",
            "publish (broker timestamp) to hand-off to the subscribers' connections",
            buckets=buckets, sum_value=stats.latency_sum)
        yield GaugeMetricFamily("wirehub_broker_healthy", "1 while the broker delivers",
                                value=1 if node.broker.healthy else 0)
        yield CounterMetricFamily("wirehub_broker_gaps_repaired",
                                  "publications re-read from history to close gaps",
                                  value=node.continuity.repaired)
        yield CounterMetricFamily("wirehub_broker_resyncs",
                                  "channels whose subscribers were sent to recover (4003)",
                                  value=node.continuity.resyncs)
        yield GaugeMetricFamily("wirehub_uptime_seconds", "seconds since the node started",
                                value=node.uptime)
