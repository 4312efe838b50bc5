"""Configuration of the server and the clients, with documented defaults."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from chatcli.defaults import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_ROOM
from chatcli.errors import ConfigError
from chatcli.protocol import CaseMapping, is_valid_channel


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``chat serve`` can be told. Times are in seconds, sizes in bytes."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    name: str = "chatcli.local"  #: the server name, the source of its own messages
    network: str = "chatcli"  #: NETWORK in ISUPPORT
    room: str = DEFAULT_ROOM  #: the default room, where clients that ask are put on arrival
    motd: tuple[str, ...] = ()  #: message-of-the-day lines; none: a welcome naming the room
    password: str | None = None  #: server password clients must give with PASS
    #: TLS on the listener at ``port``. Without tls_cert, ``chat serve`` makes a
    #: self-signed certificate in its data directory on first use and prints its
    #: fingerprint.
    tls: bool = False
    #: A TLS listener beside the plaintext one, on this port (6697 by convention).
    tls_port: int | None = None
    tls_cert: str | None = None  #: the certificate chain, a PEM file
    tls_key: str | None = None  #: its private key, a PEM file (none: in tls_cert)
    #: An HTTP listener on this port, on the same addresses as host, for health checks
    #: (GET /healthz) and Prometheus metrics (GET /metrics); HTTPS with the same
    #: certificate when TLS is on. 0 picks a free port. Unset: none.
    web_port: int | None = None
    #: With it, /metrics answers only requests that carry "Authorization: Bearer <token>".
    metrics_token: str | None = None
    #: The Origins (e.g. "https://chat.example.org") whose web pages may open a WebSocket
    #: on the web listener. Empty: only pages it serves itself.
    web_origins: tuple[str, ...] = ()
    #: Reverse proxies in front of the web listener (addresses or networks, like
    #: "127.0.0.1" or "10.0.0.0/8"): for a WebSocket from one of them, the client's address
    #: is the last one in its X-Forwarded-For header. From anyone else that header is
    #: ignored. Empty: no proxy is believed.
    web_proxies: tuple[str, ...] = ()
    #: TCP load balancers (addresses or networks, like "10.0.0.5") that begin every
    #: connection with a PROXY protocol header, v1 or v2 (haproxy's send-proxy-v2), on
    #: the IRC ports and the web port: the client's address is the one the header gives.
    #: A connection from one of them without a valid header is closed; from anyone else
    #: a header is never read. Empty: none.
    proxy_protocol: tuple[str, ...] = ()
    #: Make this server one node of a cluster sharing this Redis (redis://host:port/db):
    #: one set of people, nicks and rooms across all its nodes. Unset: a single server.
    cluster: str | None = None
    #: Seconds within which a node that is gone counts as gone: the others have its users
    #: quit and free their nicks. A node cut off from Redis ends its own clients'
    #: connections before that (at 0.6 of it), so that no nick is ever held twice.
    cluster_timeout: float = 10.0
    casemapping: CaseMapping = CaseMapping.ASCII
    max_sendq: int = 1 << 20  #: bytes queued to one client before it is dropped
    #: The kernel's send buffer per client (SO_SNDBUF). Left to itself Linux lets it grow
    #: to 4 MiB for a client that does not read, hiding a stalled client from the send
    #: queue and costing memory; chat lines need far less.
    socket_sndbuf: int = 64 * 1024
    registration_timeout: float = 30.0  #: time allowed from connect to registration
    ping_interval: float = 90.0  #: idle time after which the server sends PING
    ping_timeout: float = 60.0  #: time to answer that PING before being dropped
    tick: float = 1.0  #: how often liveness is checked
    flood_burst: int = 20  #: commands a client may send at once...
    flood_rate: float = 10.0  #: ...and then each second; 0 turns flood control off
    #: A client whose commands are held more than this many seconds behind that rate is
    #: disconnected: "Excess Flood". 0: never.
    flood_kill: float = 30.0
    #: Bytes of lines read from a client and not yet run; more is "Excess Flood" too.
    #: At least 32 KiB (a read is up to 16 KiB, a line with tags up to 8.7 KiB).
    max_recvq: int = 128 * 1024
    max_clients: int = 4096  #: connections at once, in all; more are told "Server full"
    max_per_ip: int = 10  #: connections at once from one address; 0: no limit
    #: New connections one address may make in ``throttle_window`` seconds; 0: no limit.
    throttle_connects: int = 10
    throttle_window: float = 10.0  #: ...the seconds counted for throttle_connects
    #: Loopback addresses (tests, bots, a proxy) are exempt from max_per_ip and the
    #: throttle; max_clients applies to everyone.
    exempt_loopback: bool = True
    #: Show others each user's address as a cloak, a keyed hash of it and the network's
    #: name (2a3v7pwbqkv6e.chatcli), the same after a restart with the same database.
    #: Server operators and the user still see the address. Off: everyone sees every
    #: address. A rehash changes it for connections made from then on.
    cloak_hosts: bool = True
    shutdown_grace: float = 1.0  #: time clients get to read their last lines at shutdown
    max_channels: int = 50  #: rooms one client may be in (CHANLIMIT)
    max_targets: int = 4  #: targets of one PRIVMSG, NOTICE, TAGMSG, KICK or NAMES (TARGMAX)
    #: The database: accounts, registered rooms, history. A SQLite file (default: chat.db
    #: in the data directory), or a PostgreSQL database's URL, postgresql://user@host/db,
    #: which the nodes of a cluster share (chat serve --no-db keeps nothing).
    db: str | None = None
    history_per_target: int = 10_000  #: messages kept per room or conversation
    history_days: float = 0.0  #: and none older than this many days (0: no limit)
    replay_lines: int = 20  #: lines of a room's history shown to who joins it
    #: The most messages one CHATHISTORY request returns (CHATHISTORY=): a bound on what
    #: one request costs; clients ask again for more.
    max_chathistory: int = 500
    #: Server operators: (name, password hash from ``chat hash-password``) pairs.
    operators: tuple[tuple[str, str], ...] = ()
    max_monitor: int = 100  #: nicks one client may watch with MONITOR (MONITOR=)
    #: Let scripts (chat send, chat tail: the chatcli.local/quiet capability) come into a
    #: room and go without a join or quit line for everyone in it. They still show in NAMES
    #: and WHO, and keys, bans, invite-only and moderation apply to them as to anyone.
    quiet_clients: bool = True
    #: Who may hold a registered nick. "timeout": anyone, but who is not logged in to its
    #: account is renamed after nick_grace seconds, and messages to the nick wait for the
    #: owner meanwhile. "strict": only who logs in to the account as they connect (SASL,
    #: or PASS <account>:<password>); others are told to choose another nick.
    nick_reservation: str = "timeout"
    #: Time someone holding a registered nick has to log in before being renamed.
    nick_grace: float = 30.0
    #: After 3 failed logins (per IP or account), each attempt waits this long first,
    #: doubling with each further failure...
    login_backoff: float = 1.0
    login_backoff_max: float = 10.0  #: ...up to this long
    #: Password hashes (logins, registrations, password changes, OPER) one address, one
    #: account or one operator name may cost the server at once, successes included...
    hash_burst: int = 8
    #: ...and then one each this many seconds; more wait for their turn. (Each hash takes
    #: about 50 ms of a core and 16 MiB. Loopback is exempt per address, with
    #: exempt_loopback.)
    hash_interval: float = 2.0
    #: Accounts one address may register in ``account_window`` seconds (0: no limit;
    #: loopback is exempt with exempt_loopback). Failed registrations (a name taken) are
    #: slowed as failed logins are.
    account_limit: int = 3
    account_window: float = 3600.0  #: ...the seconds counted for account_limit
    #: The longest nick, in characters (NICKLEN); longer ones are refused (432).
    nick_len: int = 30
    #: The longest room name, in characters, '#' included (CHANNELLEN); longer: refused.
    channel_len: int = 64
    #: The longest topic, away message and kick reason, in characters (TOPICLEN, AWAYLEN,
    #: KICKLEN); longer ones are cut. (What goes out is cut to an IRC line in any case.)
    topic_len: int = 390
    away_len: int = 390  #: see topic_len
    kick_len: int = 390  #: see topic_len
    version: str = field(default="")

    def validate(self) -> ServerConfig:
        """Check the values; return self.

        Raises:
            ConfigError: a value is out of range, with which one and why.
        """
        for what in ("port", "tls_port", "web_port"):
            port = getattr(self, what)
            if port is not None and not 0 <= port <= 65535:
                raise ConfigError(f"{what} must be between 0 and 65535, not {port}")
        if not is_valid_channel(self.room, self.channel_len):
            raise ConfigError(f"room must be a valid room name starting with '#': {self.room!r}")
        if not self.name or " " in self.name:
            raise ConfigError(f"server name may not be empty or contain spaces: {self.name!r}")
        for what in (
            "max_sendq",
            "registration_timeout",
            "ping_interval",
            "ping_timeout",
            "tick",
            "cluster_timeout",
        ):
            if getattr(self, what) <= 0:
                raise ConfigError(f"{what} must be positive")
        if self.nick_grace <= 0 or self.login_backoff < 0 or self.login_backoff_max < 0:
            raise ConfigError("nick_grace must be positive, and the login backoffs 0 or more")
        if self.flood_rate < 0 or self.flood_burst < 1:
            raise ConfigError("flood_rate must be 0 (off) or more, and flood_burst at least 1")
        if self.flood_kill < 0 or self.max_recvq < 32 * 1024:
            raise ConfigError("flood_kill must be 0 (off) or more, and max_recvq at least 32768")
        if self.max_clients < 1 or self.max_per_ip < 0 or self.throttle_connects < 0:
            raise ConfigError("max_clients must be at least 1; max_per_ip, throttle_connects 0+")
        if self.throttle_window <= 0 or self.account_window <= 0:
            raise ConfigError("throttle_window and account_window must be positive")
        if self.tls and self.tls_port is not None:
            raise ConfigError(
                "tls makes the port speak TLS; tls_port adds a TLS port beside a plaintext "
                "one: give one of them (--tls or --tls-port)"
            )
        if self.tls_port and self.tls_port == self.port:
            raise ConfigError(f"tls_port must differ from port ({self.port})")
        if self.web_port and self.web_port in (self.port, self.tls_port):
            raise ConfigError(f"web_port must differ from port and tls_port ({self.web_port})")
        if (self.tls_cert or self.tls_key) and not self.wants_tls:
            raise ConfigError("tls_cert and tls_key need tls, or a tls_port (--tls, --tls-port)")
        if self.tls_key and not self.tls_cert:
            raise ConfigError("tls_key needs tls_cert, the certificate it goes with")
        if self.hash_burst < 1 or self.hash_interval < 0:
            raise ConfigError("hash_burst must be at least 1, and hash_interval 0 or more")
        if self.nick_reservation not in ("timeout", "strict"):
            raise ConfigError(
                f'nick_reservation must be "timeout" or "strict", not {self.nick_reservation!r}'
            )
        for net in self.proxy_protocol:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ConfigError(f"proxy_protocol: not an address or network: {net!r}") from None
        if self.account_limit < 0:
            raise ConfigError("account_limit must be 0 (no limit) or more")
        for what in (
            "nick_len", "channel_len", "topic_len", "away_len", "kick_len", "max_channels",
            "max_targets", "max_monitor", "max_chathistory",
        ):  # fmt: skip
            if getattr(self, what) < 1:
                raise ConfigError(f"{what} must be at least 1")
        return self

    @property
    def wants_tls(self) -> bool:
        """Whether any listener speaks TLS."""
        return self.tls or self.tls_port is not None
