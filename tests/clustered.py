"""The protocol tests against a two-node cluster (``CHATCLI_TEST_CLUSTER=1``, or
``./run test-cluster``): the same tests, their clients spread over two nodes.

Under it, ``make_server(...)`` (and so the ``server`` fixture) starts two servers in this
process with the test's config plus ``cluster=`` the session's redis-server, and returns a
:class:`Nodes` that stands in for a ``RunningServer``: its ``port`` is node A's and node
B's in turn, at each reading (``Client(running.port)`` lands on A, B, A, ...), and its
``server`` is node A's (a test that looks inside the server sees node A).

* Each cluster has a Redis database of its own (``/1`` to ``/15``), emptied when it
  starts: two servers of one test are two chats, and a restart starts from nothing, as
  for one server.
* A SQLite database cannot be shared by two nodes: a test's ``db=<file>`` becomes a
  PostgreSQL database of the session's ``postgres`` (the same one for the same file, so
  that a restart finds what was kept).
* Replication takes a few milliseconds, where one server's change is seen at once: before
  a test's client sends a line, and when :meth:`Client.register` and :meth:`Client.sync`
  (the tests' "everything sent before has been handled") return, the fixture waits until
  every node has applied every event published until then (:func:`settle`).
  ``CHATCLI_TEST_CLUSTER_SETTLE=0`` turns that off, to see what the lag alone does.
* A test that cannot apply to a cluster is marked ``single_server`` (with its reason) and
  is skipped under it.

The normal run does none of this: :data:`ENABLED` is false.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from chatcli.config import ServerConfig

#: Whether this run's servers are two-node clusters.
ENABLED = os.environ.get("CHATCLI_TEST_CLUSTER", "") not in ("", "0")
#: Whether Client.register and Client.sync wait for the nodes to agree (0: they do not,
#: to see what replication lag alone does).
SETTLE = os.environ.get("CHATCLI_TEST_CLUSTER_SETTLE", "1") != "0"
#: Seconds a node may be out of touch (as tests/server/test_cluster.py).
LIVENESS = 2.0
#: The longest :func:`settle` waits for the nodes to agree.
SETTLE_TIMEOUT = 5.0

#: The clusters running now, by each node's port.
_by_port: dict[int, Nodes] = {}
#: Redis databases in use by a running cluster.
_dbs_in_use: set[int] = set()
#: A SQLite file named by a test -> the PostgreSQL database standing in for it.
_databases: dict[str, str] = {}


class _Counted:
    """What a node's cluster queued and has published (entries), to know when it is idle."""

    def __init__(self, cluster: Any) -> None:
        self.queued = 0
        self.published = 0
        self.lock = threading.Lock()
        queue, publish = cluster.queue, cluster._publish

        def counted_queue(ops: list[Any]) -> None:
            with self.lock:
                self.queued += 1
            queue(ops)

        def counted_publish(batch: list[Any]) -> None:
            publish(batch)
            with self.lock:
                self.published += len(batch)

        cluster.queue = counted_queue
        cluster._publish = counted_publish


class Nodes:
    """Two nodes of one cluster, standing in for a ``RunningServer``."""

    def __init__(
        self,
        config: ServerConfig,
        start_node: Callable[[ServerConfig], Any],
        request: pytest.FixtureRequest,
    ) -> None:
        redis_server = request.getfixturevalue("redis_server")
        self.db_index = next(i for i in range(1, 16) if i not in _dbs_in_use)
        _dbs_in_use.add(self.db_index)
        self.url = f"redis://127.0.0.1:{redis_server.port}/{self.db_index}"
        import redis

        #: The fixture's own connection (one: opened before the test, kept until the stop).
        self.redis = redis.Redis.from_url(
            self.url, socket_timeout=5.0, decode_responses=True, single_connection_client=True
        )
        self.redis.flushdb()
        if config.db is not None and "://" not in config.db:
            if config.db not in _databases:
                _databases[config.db] = request.getfixturevalue("postgres").new_database()
            config = replace(config, db=_databases[config.db])
        config = replace(config, cluster=self.url, cluster_timeout=LIVENESS)
        self.stopped = False
        self.nodes: list[Any] = []
        self.counted: list[_Counted] = []
        try:
            for _ in range(2):
                node = start_node(config)
                self.nodes.append(node)
                self.counted.append(_Counted(node.server.cluster))
        except BaseException:
            self.stop()
            raise
        self.server = self.nodes[0].server
        self.host = self.nodes[0].host
        self.ports = [node.port for node in self.nodes]
        self._next = itertools.cycle(self.ports)
        for port in self.ports:
            _by_port[port] = self

    @property
    def port(self) -> int:
        """Node A's port, then node B's, in turn."""
        return next(self._next)

    @property
    def config(self) -> ServerConfig:
        return self.server.config

    @property
    def thread(self) -> threading.Thread:
        return self.nodes[0].thread

    def settle(self) -> None:
        """Wait until every node has published what it queued until now, and every node
        has applied every event of the stream until then."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        targets = []
        for counted in self.counted:
            with counted.lock:
                targets.append(counted.queued)
        for counted, target in zip(self.counted, targets, strict=True):
            while counted.published < target:
                if time.monotonic() > deadline:
                    raise AssertionError("a node did not publish its events in time")
                time.sleep(0.002)
        last = self.redis.xrevrange(f"chatcli:{self.config.network}:events", count=1)
        if not last:
            return
        wanted = _stream_id(last[0][0])
        for node in self.nodes:
            cluster = node.server.cluster
            while _stream_id(cluster.last_id) < wanted:
                if time.monotonic() > deadline:
                    raise AssertionError("a node did not apply the cluster's events in time")
                time.sleep(0.002)
            with node.server.world.lock:  # (the last read of events is applied)
                pass

    def stop(self) -> None:
        if self.stopped:  # (as a RunningServer's, twice is harmless)
            return
        self.stopped = True
        for node in self.nodes:
            _by_port.pop(node.port, None)
            node.stop()
        self.redis.close()
        _dbs_in_use.discard(self.db_index)


def _stream_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def settle(port: int) -> None:
    """Under the cluster run, wait until the cluster the node at ``port`` is one of has
    replicated everything (see :meth:`Nodes.settle`); else nothing."""
    nodes = _by_port.get(port)
    if nodes is not None and SETTLE:
        nodes.settle()


def running() -> bool:
    """Whether a cluster is running (at a test's start: the module's own)."""
    return bool(_by_port)


def gone(port: int, address: tuple[str, int]) -> None:
    """Under the cluster run, once a client's connection to the node at ``port`` is
    closed: wait until that node has let go of it (the client sees the end before the
    node has published the departure), and every node has applied the departure."""
    nodes = _by_port.get(port)
    if nodes is None or not SETTLE:
        return
    world = nodes.nodes[nodes.ports.index(port)].server.world
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        with world.lock:
            held = [conn for conn in world.connections if _peer(conn) == address]
        if not held:
            break
        if time.monotonic() > deadline:
            raise AssertionError("the node did not let go of a closed connection in time")
        time.sleep(0.002)
    nodes.settle()


def _peer(conn: Any) -> Any:
    try:
        return conn.sock.getpeername()
    except OSError:
        return None


def skip_single_server(items: list[pytest.Item]) -> None:
    """Under the cluster run, skip the tests marked ``single_server``."""
    for item in items:
        marker = item.get_closest_marker("single_server")
        if marker is not None:
            reason = marker.args[0] if marker.args else marker.kwargs.get("reason", "")
            item.add_marker(pytest.mark.skip(reason=f"single server only: {reason}"))
