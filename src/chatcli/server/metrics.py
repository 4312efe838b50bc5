"""``GET /metrics`` on the web listener: the server's figures in Prometheus' text format.

A custom collector (:class:`ServerCollector`) reads the server's state when it is scraped,
so that serving chat costs nothing more than the counters it keeps anyway: each
connection's lines and bytes (counted by its thread and the flusher), the messages by kind
and target (counted under the world lock as they are delivered), the figures of the
connections that have ended (kept by :meth:`Server.forget`), the refusals (counted where
they are decided), and the store's commit times (noted by its writer). It is registered,
with prometheus_client's process collector (CPU, memory, file descriptors), on a registry
of the server's own: never the global default one, so that two servers in one process (the
tests) do not mix, and nothing else registered there leaks out.

Nothing here takes the world lock: the counts come from :meth:`Server.traffic` (the
server's state lock, briefly) and from glances at sizes, on the GIL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from chatcli.server.proxied import NO_HEADER

if TYPE_CHECKING:
    from chatcli.server.cluster import ClusterView
    from chatcli.server.listener import Server

#: The refusals' label values, by the reason a client is told (listener.Server._admit).
REFUSALS = {
    "Server full": "server_full",
    "Too many connections from your address": "per_address",
    "Connecting too fast": "throttle",
    NO_HEADER: "proxy_header",  # from a proxy (proxy_protocol), no valid PROXY header
}


class ServerCollector(Collector):
    """The figures of one server, read at each scrape (see the module docstring)."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        server = self.server
        view = server.traffic()
        totals = view.totals
        connections = GaugeMetricFamily(
            "chatcli_connections", "IRC connections open, by transport", labels=["transport"]
        )
        for transport, count in view.by_transport.items():
            connections.add_metric([transport], count)
        yield connections
        yield GaugeMetricFamily(
            "chatcli_users", "Connections past registration (NICK and USER)", view.registered
        )
        yield GaugeMetricFamily(
            "chatcli_rooms", "Rooms on the server", len(server.world.channels)
        )  # (a glance at a dict's size, on the GIL)
        counters = (
            ("chatcli_lines_received", "IRC lines read from clients", totals.lines_received),
            ("chatcli_bytes_received", "Bytes read from clients", totals.bytes_received),
            (
                "chatcli_lines_sent",
                "IRC lines delivered to clients' send queues",
                totals.lines_sent,
            ),
            ("chatcli_bytes_sent", "Bytes sent to clients", totals.bytes_sent),
            (
                "chatcli_sendq_drops",
                "Clients dropped for not reading (SendQ exceeded)",
                totals.sendq_drops,
            ),
            (
                "chatcli_flood_kills",
                "Clients dropped for flooding (Excess Flood)",
                totals.flood_kills,
            ),
        )
        for name, documentation, value in counters:
            yield CounterMetricFamily(name, documentation, value)
        said = server.world.messages  # (copies of two fixed-size dicts, on the GIL)
        for name, documentation, counts in (
            (
                "chatcli_messages_received",
                "Messages taken from clients, by command and target",
                dict(said.received),
            ),
            (
                "chatcli_messages_delivered",
                "Copies of those messages queued for their recipients",
                dict(said.delivered),
            ),
        ):
            family = CounterMetricFamily(name, documentation, labels=["kind", "target"])
            for (kind, target), count in counts.items():
                family.add_metric([kind.lower(), target], count)
            yield family
        refused = CounterMetricFamily(
            "chatcli_connections_refused",
            "Connections refused as they came, by reason",
            labels=["reason"],
        )
        counts = {label: 0 for label in REFUSALS.values()}
        for reason, count in view.refused.items():
            label = REFUSALS.get(reason, reason)
            counts[label] = counts.get(label, 0) + count
        for label, count in sorted(counts.items()):
            refused.add_metric([label], count)
        yield refused
        flusher = server.flusher
        yield GaugeMetricFamily(
            "chatcli_flusher_backlog",
            "Events queued for the thread that writes to clients, not yet applied",
            len(flusher._log),  # (a glance: len of a deque, on the GIL)
        )
        cluster = server.cluster
        if cluster is not None:
            yield from _cluster_metrics(cluster.view())
        store = server.store
        if store is not None:
            counts_, total = store.commit_seconds.snapshot()
            buckets: list[tuple[str, float]] = []
            running = 0
            for bound, count in zip(store.commit_seconds.bounds, counts_, strict=False):
                running += count
                buckets.append((repr(bound), running))
            buckets.append(("+Inf", running + counts_[-1]))
            yield HistogramMetricFamily(
                "chatcli_store_commit_seconds",
                "How long each database transaction that committed took (group commit)",
                buckets=buckets,
                sum_value=total,
            )


def _cluster_metrics(view: ClusterView) -> Iterator[Metric]:
    """The cluster this server is a node of (see chatcli.server.cluster)."""
    yield GaugeMetricFamily("chatcli_cluster_nodes", "Nodes of the cluster alive", view.alive)
    users = GaugeMetricFamily(
        "chatcli_cluster_users", "Registered users on each node of the cluster", labels=["node"]
    )
    for node, count in sorted(view.users.items()):
        users.add_metric([node], count)
    yield users
    yield GaugeMetricFamily(
        "chatcli_cluster_lag_seconds",
        "From an event's publication to its application on this node, lately",
        view.lag,
    )
    yield GaugeMetricFamily(
        "chatcli_cluster_events_per_second",
        "Events applied on this node per second, over the last liveness beat",
        view.rate,
    )
    yield CounterMetricFamily(
        "chatcli_cluster_events_published", "Events this node published", view.published
    )
    yield CounterMetricFamily(
        "chatcli_cluster_events_applied", "Events applied on this node", view.applied
    )
    yield GaugeMetricFamily(
        "chatcli_cluster_backlog", "Entries queued on this node, not yet published", view.backlog
    )
    yield GaugeMetricFamily(
        "chatcli_cluster_connected", "1 while this node reaches Redis, else 0", 0 if view.cut else 1
    )


def make_registry(server: Server) -> CollectorRegistry:
    """A registry of ``server``'s own, holding its collector and the process collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(server))
    ProcessCollector(registry=registry)
    return registry
