"""Questions about the server and its users: WHO (and WHOX), WHOIS, WHOWAS, ISON, USERHOST,
LUSERS, MOTD, VERSION, TIME, INFO, ADMIN, STATS, LINKS, LIST and HELP."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from chatcli.protocol import Mask, Message, is_channel, mask_match, number
from chatcli.protocol import numerics as n
from chatcli.server.commands import COMMANDS, command
from chatcli.server.errors import (
    HelpNotFound,
    NeedMoreParams,
    NoSuchNick,
    NoSuchServer,
    UnknownError,
)
from chatcli.server.handlers import operators
from chatcli.server.handlers.modes import MAX_MASK_LEN
from chatcli.server.isupport import isupport, send_isupport

if TYPE_CHECKING:
    from chatcli.server.channel import Channel
    from chatcli.server.connection import Connection


# -- WHO, WHOIS -----------------------------------------------------------------------------

#: The WHOX fields, in the order RPL_WHOSPCRPL gives them (IRCv3 WHOX, with ircu's d and o).
WHOX_FIELDS = "tcuihsnfdlaor"
#: WHOX's "the server refuses to disclose the IP address".
HIDDEN_IP = "255.255.255.255"


@dataclass(frozen=True)
class WhoOptions:
    """WHO's second parameter, ``[o][%<fields>[,<token>]]``."""

    opers_only: bool = False  #: "o": only server operators
    fields: str | None = None  #: the WHOX fields asked for, in reply order; None: plain WHO
    token: str = "0"  #: echoed as field t

    @classmethod
    def parse(cls, arg: str) -> WhoOptions:
        """Raises: UnknownError: the token is not 1 to 3 digits (IRCv3 WHOX)."""
        flags, percent, spec = arg.partition("%")
        if not percent:
            return cls(opers_only="o" in flags)
        letters, comma, token = spec.partition(",")
        if comma and not (token.isascii() and token.isdigit() and len(token) <= 3):
            raise UnknownError("WHO", text="The WHOX token must be 1 to 3 digits")
        # "Servers MUST ignore any non-standard field they don't support." Letters are
        # case-sensitive: IRCnet's non-standard S and U are not s and u.
        fields = "".join(f for f in WHOX_FIELDS if f in letters)
        return cls("o" in flags, fields, token if comma else "0")


@command("WHO")
def who(conn: Connection, msg: Message) -> None:
    """WHO [<room>|<mask> [%<fields>[,<token>]]] — list the people in a room, or those
    matching a nick mask. With %<fields> (WHOX) only the fields asked for, in the order
    t c u i h s n f d l a o r: token, room, user, IP, host, server, nick, flags, hops,
    idle seconds, account, op level, real name."""
    mask = msg.params[0] if msg.params else "*"
    options = WhoOptions.parse(msg.params[1]) if len(msg.params) > 1 else WhoOptions()
    named, exact = (None, False) if is_channel(mask) else _nicks_matching(conn, mask)
    with conn.world.lock:
        found = _who_targets(conn, mask, named, exact)
        if options.opers_only:
            found = [(other, channel) for other, channel in found if "o" in other.modes]
        if options.fields is None:
            rows = [_who_row(conn, other, channel) for other, channel in found]
        else:
            rows = [_whox_row(conn, other, channel, options) for other, channel in found]
    numeric = n.RPL_WHOREPLY if options.fields is None else n.RPL_WHOSPCRPL
    for row in rows:
        conn.reply(numeric, *row)
    conn.reply(n.RPL_ENDOFWHO, mask, "End of WHO list")


def _nicks_matching(conn: Connection, mask: str) -> tuple[list[tuple[str, Connection]], bool]:
    """The connections whose nick matches ``mask`` ("0": everyone), each with its folded
    nick, as they were a moment ago, and whether ``mask`` is one exact nick (no wildcard).
    The world lock is held only to copy the table of nicks, and the matching (linear in
    the mask and the nick, but once per nick) happens outside it."""
    world = conn.world
    matcher = Mask.compile("*" if mask == "0" else mask, world.casemapping)  # outside the lock
    literal = matcher.literal
    with world.lock:
        if literal is not None:  # one nick, the usual WHO: no need to look at the others
            holder = world.nicks.get(literal)
            return ([] if holder is None else [(literal, holder)]), True
        nicks = list(world.nicks.items())
    return [(folded, other) for folded, other in nicks if matcher.matches(folded)], False


def _who_targets(
    conn: Connection, mask: str, named: list[tuple[str, Connection]] | None, exact: bool
) -> list[tuple[Connection, Channel | None]]:
    """Whom WHO ``mask`` shows ``conn``, each with the room to show: for a nick mask,
    those of ``named`` (from :func:`_nicks_matching`) who still have that nick and whom
    ``conn`` may see. Invisibility (+i) hides someone who shares no room with ``conn``
    from masks, not from ``exact``, their own nick (as WHOIS does not either). Caller
    holds the lock."""
    conn.world.assert_held()
    world = conn.world
    if named is None:
        channel = world.find_channel(mask)
        if channel is None or channel.hidden_from(conn):
            return []
        joined = conn in channel.members
        return [(m, channel) for m in channel.members if joined or "i" not in m.modes]
    shared = set() if exact else world.neighbours(conn)  # (an exact nick needs none)
    return [
        (other, None)
        for folded, other in named
        if world.nicks.get(folded) is other
        and other.registered
        and (exact or "i" not in other.modes or other in shared)
    ]


def _who_flags(conn: Connection, other: Connection, channel: Channel | None) -> str:
    """H (here) or G (gone, away), the room prefixes, then B for a bot (as Ergo)."""
    flags = "G" if other.away is not None else "H"
    if channel is not None:
        flags += channel.prefix_of(other, "multi-prefix" in conn.caps)
    if "o" in other.modes:
        flags += "*"
    if "B" in other.modes:
        flags += "B"
    return flags


def _who_row(conn: Connection, other: Connection, channel: Channel | None) -> tuple[str, ...]:
    return (
        channel.name if channel else "*",
        other.user or "~u",
        other.display_host,
        other.server_name,
        other.name,
        _who_flags(conn, other, channel),
        f"0 {other.realname}",
    )


def _whox_row(
    conn: Connection, other: Connection, channel: Channel | None, options: WhoOptions
) -> tuple[str, ...]:
    assert options.fields is not None
    values = {
        "t": options.token,
        "c": channel.name if channel else "*",
        "u": other.user or "~u",
        # Your own IP, and to server operators everyone's.
        "i": _ip_param(other.host) if other is conn or "o" in conn.modes else HIDDEN_IP,
        "h": other.display_host,
        "s": other.server_name,
        "n": other.name,
        "f": _who_flags(conn, other, channel),
        "d": "0",  # hops: one server
        "l": str(int(time.monotonic() - other.last_spoke)),
        "a": other.account or "0",  # "0" is WHOX's "logged out"
        "o": "*",  # channel op levels do not exist; Ergo answers "*" too
        "r": other.realname,
    }
    return tuple(values[field] for field in options.fields)


def _ip_param(ip: str) -> str:
    """An IP address as a middle parameter: "::1" would read as a trailing one."""
    return "0" + ip if ip.startswith(":") else ip


@command("WHOIS", 1)
def whois(conn: Connection, msg: Message) -> None:
    """WHOIS <nick> — who someone is, which rooms they are in, whether they are away."""
    nick = msg.params[-1].split(",")[0]
    world = conn.world
    with world.lock:
        other = world.find_nick(nick)
        if other is None:
            conn.send_error(NoSuchNick(nick))
            conn.reply(n.RPL_ENDOFWHOIS, nick, "End of /WHOIS list")
            return
        rooms = [
            channel.prefix_of(other) + channel.name
            for channel in other.channels
            if not channel.hidden_from(conn)
        ]
        away = other.away
        bot = "B" in other.modes
        operator = "o" in other.modes
        secure = "Z" in other.modes
        account = other.account
        actually = other is conn or "o" in conn.modes
    user = other.user or "~u"
    conn.reply(n.RPL_WHOISUSER, other.name, user, other.display_host, "*", other.realname)
    if rooms:
        conn.reply(n.RPL_WHOISCHANNELS, other.name, " ".join(sorted(rooms)))
    conn.reply(n.RPL_WHOISSERVER, other.name, other.server_name, conn.config.network)
    if operator:
        conn.reply(n.RPL_WHOISOPERATOR, other.name, "is an IRC operator")
    if actually:  # the real address, behind the cloak: to operators and oneself (as Ergo)
        _reply_actually(conn, other.name, user, other.host)
    if bot:
        conn.reply(n.RPL_WHOISBOT, other.name, "is a bot")
    if secure:
        conn.reply(n.RPL_WHOISSECURE, other.name, "is using a secure connection")
    if account is not None:
        conn.reply(n.RPL_WHOISACCOUNT, other.name, account, "is logged in as")
    if away is not None:
        conn.reply(n.RPL_AWAY, other.name, away)
    conn.reply(
        n.RPL_WHOISIDLE,
        other.name,
        str(other.idle_seconds),
        str(other.signon),
        "seconds idle, signon time",
    )
    conn.reply(n.RPL_ENDOFWHOIS, other.name, "End of /WHOIS list")


def _reply_actually(conn: Connection, nick: str, user: str, ip: str) -> None:
    """RPL_WHOISACTUALLY: ``nick``'s real address, ``ip``."""
    actual = "Actual user@host, Actual IP"
    conn.reply(n.RPL_WHOISACTUALLY, nick, f"{user}@{ip}", _ip_param(ip), actual)


@command("WHOWAS", 1)
def whowas(conn: Connection, msg: Message) -> None:
    """WHOWAS <nick>{,<nick>} [<count>] — who used these nicks that are no longer online:
    the latest first, at most ``count`` of each nick when it is positive. At most
    ``max_targets`` nicks are looked up (``TARGMAX=...,WHOWAS:<n>``)."""
    nicks = [nick for nick in msg.params[0].split(",") if nick][: conn.config.max_targets]
    count = (number(msg.params[1]) if len(msg.params) > 1 else None) or 0
    world = conn.world
    wanted = {world.fold(nick): nick for nick in nicks}
    shown = dict.fromkeys(wanted, 0)  # entries found of each nick
    found = []
    with world.lock:
        for departed in reversed(world.whowas):
            folded = world.fold(departed.nick)
            if folded in shown and (count <= 0 or shown[folded] < count):
                shown[folded] += 1
                found.append(departed)
    for folded, nick in wanted.items():
        if not shown[folded]:
            conn.reply(n.ERR_WASNOSUCHNICK, nick, "There was no such nickname")
    operator = "o" in conn.modes
    for departed in found:
        conn.reply(
            n.RPL_WHOWASUSER, departed.nick, departed.user, departed.host, "*", departed.realname
        )
        if operator:
            _reply_actually(conn, departed.nick, departed.user, departed.ip)
        left = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(departed.left_at))
        conn.reply(n.RPL_WHOISSERVER, departed.nick, conn.config.name, left)
    conn.reply(n.RPL_ENDOFWHOWAS, msg.params[0], "End of WHOWAS")


@command("ISON", 1)
def ison(conn: Connection, msg: Message) -> None:
    """ISON <nick>{ <nick>} — which of these nicks are online."""
    nicks = " ".join(msg.params).split()
    with conn.world.lock:
        online = [c.name for nick in nicks if (c := conn.world.find_nick(nick)) is not None]
    conn.reply(n.RPL_ISON, " ".join(online))


@command("USERHOST", 1)
def userhost(conn: Connection, msg: Message) -> None:
    """USERHOST <nick>{ <nick>} — the user@host of up to five nicks: ``nick*=+user@host``,
    ``*`` for a server operator, ``-`` for away."""
    replies = []
    with conn.world.lock:
        for nick in msg.params[:5]:
            other = conn.world.find_nick(nick)
            if other is not None:
                oper = "*" if "o" in other.modes else ""
                sign = "-" if other.away is not None else "+"
                replies.append(f"{other.name}{oper}={sign}{other.user}@{other.display_host}")
    conn.reply(n.RPL_USERHOST, " ".join(replies))


# -- LUSERS, MOTD, VERSION, TIME ------------------------------------------------------------


@command("LUSERS")
def lusers(conn: Connection, msg: Message) -> None:
    """LUSERS — how many people and rooms there are."""
    send_lusers(conn)


def send_lusers(conn: Connection) -> None:
    world = conn.world
    with world.lock:
        total = world.users  # (on this server; with a cluster's other nodes: everyone)
        everyone = total + world.others
        invisible = world.invisible + world.others_invisible
        unknown = len(world.connections) - total
        # (a permanent room with nobody in it, the default one, is kept but not "formed")
        channels = sum(1 for channel in world.channels.values() if channel.members)
        most = world.max_users
        most_global = max(world.max_global, everyone)
        operators = world.operators + world.others_operators
        servers = world.servers
    conn.reply(
        n.RPL_LUSERCLIENT,
        f"There are {everyone - invisible} users and {invisible} invisible on {servers} servers",
    )
    if operators:
        conn.reply(n.RPL_LUSEROP, str(operators), "operator(s) online")
    if unknown:
        conn.reply(n.RPL_LUSERUNKNOWN, str(unknown), "unknown connection(s)")
    conn.reply(n.RPL_LUSERCHANNELS, str(channels), "channels formed")
    conn.reply(n.RPL_LUSERME, f"I have {total} clients and {servers - 1} servers")
    conn.reply(n.RPL_LOCALUSERS, str(total), str(most), f"Current local users {total}, max {most}")
    conn.reply(
        n.RPL_GLOBALUSERS,
        str(everyone),
        str(most_global),
        f"Current global users {everyone}, max {most_global}",
    )


@command("MOTD")
def motd(conn: Connection, msg: Message) -> None:
    """MOTD — the server's message of the day."""
    send_motd(conn)


def send_motd(conn: Connection) -> None:
    lines = conn.config.motd or (
        f"Welcome to {conn.config.network}. Everyone meets in {conn.config.room}:",
        f"/join {conn.config.room}",
    )
    conn.reply(n.RPL_MOTDSTART, f"- {conn.config.name} Message of the day - ")
    for line in lines:
        conn.reply(n.RPL_MOTD, f"- {line}")
    conn.reply(n.RPL_ENDOFMOTD, "End of /MOTD command.")


@command("VERSION")
def version(conn: Connection, msg: Message) -> None:
    """VERSION [<server>] — the server's software and version."""
    check_target(conn, msg.params[0] if msg.params else None)
    conn.reply(n.RPL_VERSION, conn.server.version, conn.config.name, "chatcli IRC server")
    send_isupport(conn, isupport(conn.config))


@command("TIME")
def time_(conn: Connection, msg: Message) -> None:
    """TIME — the server's local time."""
    now = time.time()
    text = time.strftime("%A %B %d %Y -- %H:%M:%S %z", time.localtime(now))
    conn.reply(n.RPL_TIME, conn.config.name, str(int(now)), "0", text)


# -- INFO, ADMIN, STATS --------------------------------------------------------------------


def check_target(conn: Connection, target: str | None) -> None:
    """The optional <server> of INFO, ADMIN, STATS and VERSION: this server's name, a mask
    matching it, or the nick of someone on it (every nick here is).

    Raises:
        NoSuchServer: ``target`` names no server there is.
    """
    world = conn.world
    if target is None or mask_match(target, conn.config.name, world.casemapping):
        return
    with world.lock:
        if world.find_nick(target) is not None:
            return
    raise NoSuchServer(target)


@command("INFO")
def info(conn: Connection, msg: Message) -> None:
    """INFO [<server>] — what this server is."""
    check_target(conn, msg.params[0] if msg.params else None)
    server = conn.server
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(server.created))
    for line in (
        f"{conn.config.name} runs {server.version}, a chatcli IRC server:",
        "a small chat server and client in Python, installed with pip.",
        f"Running on Python {platform.python_version()} since {started}.",
    ):
        conn.reply(n.RPL_INFO, line)
    conn.reply(n.RPL_ENDOFINFO, "End of INFO list")


@command("ADMIN")
def admin(conn: Connection, msg: Message) -> None:
    """ADMIN [<server>] — who runs this server."""
    check_target(conn, msg.params[0] if msg.params else None)
    name = conn.config.name
    conn.reply(n.RPL_ADMINME, name, "Administrative info")
    conn.reply(n.RPL_ADMINLOC1, f"{name} is a chatcli IRC server")
    conn.reply(n.RPL_ADMINLOC2, f"on the {conn.config.network} network")
    conn.reply(n.RPL_ADMINEMAIL, "No administrator e-mail address is configured")


#: STATS d: the health of the server's store (not in chatcli.protocol.numerics: the
#: number several servers use for their STATS debug lines).
RPL_STATSDEBUG = "249"


def stats_store(conn: Connection) -> None:
    """One RPL_STATSDEBUG: whether the store writes (``ok``), or since when it fails and
    why, with the writes not kept; or that there is none."""
    store = conn.server.store
    if store is None:
        conn.reply(RPL_STATSDEBUG, "d", "store none: the server keeps no history")
        return
    health = store.health()
    if health.fatal is not None:
        text = f"store stopped: {health.fatal}; {health.not_kept} writes not kept"
    elif health.failing_since is not None:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(health.failing_since))
        text = (
            f"store failing since {since}: {health.reason}; {health.not_kept_now} writes not "
            f"kept since then ({health.not_kept} since start)"
        )
    else:
        text = f"store ok: {health.not_kept} writes not kept since start"
    conn.reply(RPL_STATSDEBUG, "d", f"{text} ({store.path})")


def stats_cluster(conn: Connection) -> None:
    """STATS c: the cluster this server is a node of (or that it is none): the nodes
    alive, each one's users, how far behind this node reads, what it has published and
    applied."""
    cluster = conn.server.cluster
    if cluster is None:
        conn.reply(RPL_STATSDEBUG, "c", "not a cluster: a single server")
        return
    view = cluster.view()
    state = "cut off from Redis" if view.cut else f"lag {view.lag:.3f} s, {view.rate:.0f} events/s"
    conn.reply(
        RPL_STATSDEBUG,
        "c",
        f"cluster on {view.where}: node {view.node}, {view.alive} nodes alive, {state}, "
        f"{view.published} events published, {view.applied} applied, {view.backlog} queued",
    )
    for node, users in sorted(view.users.items()):
        mark = " (this one)" if node == view.node else ""
        conn.reply(RPL_STATSDEBUG, "c", f"node {node}{mark}: {users} users")


@command("STATS", 1)
def stats(conn: Connection, msg: Message) -> None:
    """STATS <query> [<server>] — server statistics: STATS u is the uptime; operators have
    STATS l (connections), y (limits), d (the store's health) and c (the cluster). Other
    queries have nothing to report."""
    query = msg.params[0]
    if not query:
        raise NeedMoreParams("STATS")
    check_target(conn, msg.params[1] if len(msg.params) > 1 else None)
    letter = query[0]
    if letter == "u":
        up = int(time.time() - conn.server.created)
        days, rest = divmod(up, 86400)
        hours, rest = divmod(rest, 3600)
        minutes, seconds = divmod(rest, 60)
        conn.reply(n.RPL_STATSUPTIME, f"Server Up {days} days {hours}:{minutes:02}:{seconds:02}")
    elif letter == "d":
        operators.require_oper(conn)
        stats_store(conn)
    elif letter == "c":
        operators.require_oper(conn)
        stats_cluster(conn)
    elif letter in operators.OPER_STATS:
        operators.require_oper(conn)
        operators.OPER_STATS[letter](conn)
    conn.reply(n.RPL_ENDOFSTATS, letter, "End of /STATS report")


# -- LINKS ----------------------------------------------------------------------------------

#: LINKS's replies (RFC 2812 5.1; not in chatcli.protocol.numerics).
RPL_LINKS = "364"
RPL_ENDOFLINKS = "365"
#: What LINKS says of each server.
SERVER_INFO = "chatcli IRC server"


@command("LINKS")
def links(conn: Connection, msg: Message) -> None:
    """LINKS [[<server>] <mask>] — the servers of this network (matching the mask): this
    one, and on a cluster the other nodes that have people on them."""
    mask = msg.params[-1] if msg.params and msg.params[-1] else "*"
    if len(msg.params) > 1:
        check_target(conn, msg.params[0])
    if len(mask) > MAX_MASK_LEN:
        raise UnknownError("LINKS", text=f"Mask too long (at most {MAX_MASK_LEN} characters)")
    world = conn.world
    me = conn.config.name
    others: set[str] = set()
    if conn.server.cluster is not None:
        # The nodes this one knows of are those of the people it knows: a node alive with
        # nobody on it is not listed (the cluster's own table of nodes is Redis's).
        with world.lock:
            people = list(world.nicks.values())
        others = {person.server_name for person in people} - {me}
    matcher = Mask.compile(mask, world.casemapping)
    fold = world.casemapping.fold
    for name, hops in [(me, 0), *((other, 1) for other in sorted(others))]:
        if matcher.matches(fold(name)):
            conn.reply(RPL_LINKS, name, me, f"{hops} {SERVER_INFO}")
    conn.reply(RPL_ENDOFLINKS, mask, "End of /LINKS list")


# -- LIST -----------------------------------------------------------------------------------


#: The time conditions of LIST (ELIST C and T): the letter -> the room's time it bounds.
TIME_CONDITIONS = ("C", "T")


@dataclass(frozen=True)
class ListFilter:
    """LIST's conditions (``ELIST=CMNTU``), all of which a room must meet: ``>N`` / ``<N``
    more / fewer than N people (U); ``C>N`` / ``C<N`` made more / less than N minutes ago
    (C); ``T>N`` / ``T<N`` its topic set more / less than N minutes ago (T: a room without
    a topic meets neither); ``!<mask>`` its name not matching the mask (N). The masks
    (``<mask>``, M) that name rooms to list are targets, as plain names are: see
    :func:`list_`. Times are in unix seconds."""

    more_than: int = -1
    fewer_than: int | None = None
    created_before: float | None = None  #: C>N: made before this time
    created_after: float | None = None  #: C<N: made after it
    topic_before: float | None = None  #: T>N
    topic_after: float | None = None  #: T<N
    not_matching: tuple[Mask, ...] = ()  #: N: !<mask>

    def admits(self, users: int) -> bool:
        return users > self.more_than and (self.fewer_than is None or users < self.fewer_than)

    def admits_room(
        self, folded: str, users: int, created: float, topic: str, topic_at: float
    ) -> bool:
        """Whether a room (its name folded under the masks' casemapping) meets every
        condition."""
        if not self.admits(users):
            return False
        if self.created_before is not None and not created < self.created_before:
            return False
        if self.created_after is not None and not created > self.created_after:
            return False
        if self.topic_before is not None or self.topic_after is not None:
            if not topic:
                return False
            if self.topic_before is not None and not topic_at < self.topic_before:
                return False
            if self.topic_after is not None and not topic_at > self.topic_after:
                return False
        return not any(mask.matches(folded) for mask in self.not_matching)

    def narrowed(self, condition: str, now: float | None = None) -> ListFilter:
        """This filter and ``condition`` (``>N``, ``<N``, ``C>N``, ``C<N``, ``T>N`` or
        ``T<N``) both; ``now`` the time the minutes count back from.

        Raises:
            UnknownError: N is not a number.
        """
        timed = condition[:1] in TIME_CONDITIONS
        sign, value = condition[timed], condition[timed + 1 :]
        if not (value.isascii() and value.isdigit()) or len(value) > MAX_NUMBER_DIGITS:
            raise UnknownError(
                "LIST", text=f"Bad filter {condition}: use >N or <N users, C>N, C<N, T>N, T<N"
            )
        if not timed:
            if sign == ">":
                return replace(self, more_than=max(self.more_than, int(value)))
            fewer = int(value) if self.fewer_than is None else min(self.fewer_than, int(value))
            return replace(self, fewer_than=fewer)
        when = (time.time() if now is None else now) - int(value) * 60
        field = ("created_" if condition[0] == "C" else "topic_") + (
            "before" if sign == ">" else "after"
        )
        old = getattr(self, field)
        if old is not None:  # two bounds of one side: the narrower
            when = min(old, when) if sign == ">" else max(old, when)
        return replace(self, **{field: when})

    def excluding(self, mask: Mask) -> ListFilter:
        """This filter and "not matching ``mask``" (N) both."""
        return replace(self, not_matching=(*self.not_matching, mask))


#: The digits a LIST condition's number may have (some 19 centuries of minutes).
MAX_NUMBER_DIGITS = 9


def _is_condition(item: str) -> bool:
    """Whether a LIST item is a U, C or T condition (not a room name nor a mask)."""
    return item[:1] in ("<", ">") or (item[:1] in TIME_CONDITIONS and item[1:2] in ("<", ">"))


@command("LIST")
def list_(conn: Connection, msg: Message) -> None:
    """LIST [<room>{,<room>}] [<condition>{,<condition>}] — the rooms, their sizes and
    topics. A <room> may be a mask (#dev*): the rooms matching it. Conditions, all of
    which a room must meet: >N rooms with more than N people, <N with fewer than N; C>N
    made more than N minutes ago, C<N less; T>N topic set more than N minutes ago, T<N
    less; !<mask> a name not matching the mask. A room with nobody in it (the default
    room or a registered one, kept when empty) is not listed."""
    casemapping = conn.world.casemapping
    names: list[str] = []
    masks: list[Mask] = []  # M: rooms to list, with the names (any of them)
    where = ListFilter()
    now = time.time()
    for item in ",".join(msg.params).split(","):
        if _is_condition(item):
            where = where.narrowed(item, now)
        elif item.startswith("!") or "*" in item or "?" in item:
            if len(masks) + len(where.not_matching) >= conn.config.max_targets:
                raise UnknownError(
                    "LIST", text=f"Too many masks (at most {conn.config.max_targets})"
                )
            mask = item.removeprefix("!")
            if not mask or len(mask) > MAX_MASK_LEN:
                raise UnknownError(
                    "LIST", text=f"Bad mask {item[:MAX_MASK_LEN]} (1 to {MAX_MASK_LEN} characters)"
                )
            compiled = Mask.compile(mask, casemapping)  # (outside the lock)
            if item.startswith("!"):
                where = where.excluding(compiled)
            else:
                masks.append(compiled)
        elif item:
            names.append(item)
    world = conn.world
    named = {casemapping.fold(name) for name in names} if masks else set()
    with world.lock:  # a copy of what is needed; the matching is done outside the lock
        if names and not masks:
            found = (world.find_channel(name) for name in names)
            channels = [c for c in found if c is not None]
        else:
            channels = list(world.channels.values())
        copied = [
            (c.name, len(c.members), c.topic, c.created, c.topic_at)
            for c in channels
            if c.members and not c.hidden_from(conn)
        ]
    rows = []
    for name, users, topic, created, topic_at in copied:
        folded = casemapping.fold(name)
        if masks and folded not in named and not any(m.matches(folded) for m in masks):
            continue
        if where.admits_room(folded, users, created, topic, topic_at):
            rows.append((name, str(users), topic))
    conn.reply(n.RPL_LISTSTART, "Channel", "Users  Name")
    for name, count, text in rows:
        conn.reply(n.RPL_LIST, name, count, text)
    conn.reply(n.RPL_LISTEND, "End of /LIST")


# -- HELP -----------------------------------------------------------------------------------

INTRO = [
    "Everyday commands:",
    "  PRIVMSG #lobby :<text>   talk to the room (everyone is in #lobby)",
    "  PRIVMSG <nick> :<text>   a direct message to one person",
    "  NAMES #lobby, WHO #lobby  who is online;  LUSERS  how many",
    "  QUIT :<reason>           leave",
    "HELP <command> explains one command. All commands:",
]


#: HELP's topics besides the commands: what each room mode and user mode means.
TOPICS = {
    "CMODES": (
        "Room modes (MODE #room +<mode> [<parameter>], by its operators):",
        "  o <nick>  operator: runs the room;  v <nick>  voice: may speak when +m",
        "  b <mask>  ban (b m:<mask>: mute);  e <mask>  ban exception;  I <mask>  may join +i",
        "  (a mask a:<account> names who is logged in to that account: b a:bob, e a:bob...)",
        "  k <key>  a key to join;  l <n>  at most n members",
        "  i  invite only;  m  moderated: only o and v speak;  n  no messages from outside",
        "  p  private;  s  secret: not listed;  t  only operators set the topic",
        "  C  no CTCP but ACTION (/me)",
    ),
    "UMODES": (
        "User modes (MODE <your nick> +<mode>):",
        "  i  invisible: hidden from WHO masks and from NAMES of rooms you are not in",
        "  w  wallops: receive WALLOPS;  B  bot: your messages carry the bot tag",
        "  o  server operator (given by OPER);  Z  connected over TLS (set by the server)",
    ),
}


@command("HELP", before_registration=True)
def help_(conn: Connection, msg: Message) -> None:
    """HELP [<command>|CMODES|UMODES] — the list of commands, help on one, or the room or
    user modes."""
    if not msg.params:
        names = sorted(COMMANDS)
        lines = list(INTRO)
        lines += ["  " + " ".join(names[i : i + 8]) for i in range(0, len(names), 8)]
        lines.append("Topics: HELP CMODES (room modes), HELP UMODES (user modes)")
        subject = "*"
    else:
        subject = msg.params[0].upper()
        cmd = COMMANDS.get(subject)
        if subject in TOPICS:
            lines = list(TOPICS[subject])
        elif cmd is None:
            raise HelpNotFound(subject)
        else:
            lines = cmd.help
    conn.reply(n.RPL_HELPSTART, subject, lines[0])
    for line in lines[1:]:
        conn.reply(n.RPL_HELPTXT, subject, line)
    conn.reply(n.RPL_ENDOFHELP, subject, "End of /HELP")


@command("HELPOP", before_registration=True)
def helpop(conn: Connection, msg: Message) -> None:
    """HELPOP [<command>|CMODES|UMODES] — the same as HELP (as InspIRCd names it)."""
    help_(conn, msg)
