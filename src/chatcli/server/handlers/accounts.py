"""Accounts: REGISTER, SASL PLAIN, the NickServ service, and who may keep a registered nick.

* ``REGISTER <account> <email|*> <password>`` (IRCv3 ``draft/account-registration``,
  https://ircv3.net/specs/extensions/account-registration) registers the current nick as an
  account and logs in to it. As on Ergo the account name must be the nick, and it works
  before connection registration (``before-connect``).
* ``AUTHENTICATE`` (IRCv3 SASL 3.1/3.2, mechanism PLAIN) and ``PASS <account>:<password>``
  log in; so does ``NickServ IDENTIFY`` for clients that know nothing else.
* A registered nick belongs to its account. Whoever else holds it is told to log in and,
  after ``ServerConfig.nick_grace`` seconds, renamed to a ``Guest`` nick (Ergo's nick
  enforcement, "timeout" method). The owner, logged in, takes it back with ``NICK``.

Passwords are checked on the connection's own thread and never under the world lock: a
check costs scrypt's time and memory on purpose. Failed logins are counted per IP and per
account; after :data:`FREE_FAILURES` each further attempt first waits, twice as long each
time and at most ``ServerConfig.login_backoff_max`` seconds. Passwords are never logged.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from chatcli.passwords import hash_password, verify_password
from chatcli.protocol import Message, caps
from chatcli.protocol import numerics as n
from chatcli.server import history
from chatcli.server.commands import command
from chatcli.server.tags import Relay

if TYPE_CHECKING:
    from chatcli.server.connection import Connection
    from chatcli.server.state import World

log = logging.getLogger("chatcli.server")

SERVICE = "NickServ"
SERVICE_SOURCE = "NickServ!NickServ@services"
#: Nicks nobody may take (folded, and the same under every casemapping).
RESERVED = frozenset({"nickserv", "chanserv"})
NO_DATABASE = "Accounts need a database, and this server has none"
MIN_PASSWORD = 4
#: Failed logins (per IP and per account) that cost nothing; later ones wait first.
FREE_FAILURES = 3
#: A count of failures is forgotten after this long without another.
FAILURE_MEMORY = 15 * 60.0
#: Counts kept at most (about 170 bytes each); past it the oldest go first.
MAX_FAILURE_KEYS = 50_000
SASL_CHUNK = 400  # IRCv3 SASL: payloads come in 400-byte pieces
SASL_MAX = 4096  # more than any PLAIN payload needs


# -- throttling failed logins ---------------------------------------------------------------


def login_delay(failures: int, base: float, limit: float) -> float:
    """How long an attempt waits after ``failures`` recent failures: nothing for the first
    :data:`FREE_FAILURES`, then ``base`` doubling with each, at most ``limit``."""
    if failures < FREE_FAILURES or base <= 0:
        return 0.0
    return float(min(limit, base * 2 ** (failures - FREE_FAILURES)))


def _throttle_keys(conn: Connection, folded: str) -> tuple[str, str]:
    return ("ip " + conn.host, "account " + folded)


def _failures(world: World, keys: tuple[str, ...], now: float) -> int:
    with world.lock:
        counts = [world.failed_logins.get(key) for key in keys]
    return max(
        (count for count, last in filter(None, counts) if now - last < FAILURE_MEMORY),
        default=0,
    )


def _note(world: World, keys: tuple[str, ...], now: float, *, failed: bool) -> None:
    """Count a failure under each of ``keys`` (or forget them, after a success); and forget
    counts not added to for FAILURE_MEMORY, and the oldest past MAX_FAILURE_KEYS."""
    with world.lock:
        counts = world.failed_logins
        for key in keys:
            count, last = counts.pop(key, (0, now))
            if failed:  # to the end, as the newest
                counts[key] = (count + 1 if now - last < FAILURE_MEMORY else 1, now)
        while counts:  # oldest first: each one is dropped once, whatever the rate
            _, last = next(iter(counts.values()))
            if now - last < FAILURE_MEMORY and len(counts) <= MAX_FAILURE_KEYS:
                break
            counts.popitem(last=False)


def _pause(conn: Connection, seconds: float) -> None:
    """Sleep ``seconds`` on the connection's thread, waking early if it is ending."""
    deadline = time.monotonic() + seconds
    while conn.quit_reason is None and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.1))


# -- logging in and out ---------------------------------------------------------------------


def throttled(conn: Connection, keys: tuple[str, ...], check: Callable[[], bool]) -> bool:
    """Run ``check`` (a password check) and note its outcome under ``keys``; after repeated
    failures under any of them, wait first. Never hold the world lock."""
    world, config = conn.world, conn.config
    failures = _failures(world, keys, time.monotonic())
    wait = login_delay(failures, config.login_backoff, config.login_backoff_max)
    if wait:
        _pause(conn, wait)
    ok = check()
    _note(world, keys, time.monotonic(), failed=not ok)
    return ok


def check_login(conn: Connection, name: str, password: str) -> str | None:
    """The account ``name`` as registered if ``password`` is its password, else None.
    Slow on purpose (scrypt, and a wait after repeated failures); never hold the lock."""
    store = conn.server.store
    if store is None or not name:
        return None
    folded = conn.world.fold(name)
    account = store.account(folded)
    ok = throttled(
        conn,
        _throttle_keys(conn, folded),
        lambda: account is not None and verify_password(password, account.password),
    )
    if not ok:
        log.info("failed login to %r from %s", name, conn.host)
        return None
    assert account is not None
    return account.name


def set_account(conn: Connection, account: str | None) -> None:
    """Log ``conn`` in to ``account`` (None: out), and tell who shares a room with it
    (IRCv3 account-notify: ``ACCOUNT <name>``, or ``ACCOUNT *`` on logout)."""
    world = conn.world
    with world.lock:
        if conn.account == account:
            return
        conn.account = account
        if account is not None and world.fold(account) == conn.folded_nick:
            conn.nick_deadline = None
        if conn.registered:
            relay = Relay(Message("ACCOUNT", (account or "*",), conn.source), account=account)
            for peer in world.neighbours(conn):
                if caps.ACCOUNT_NOTIFY in peer.caps:
                    peer.relay(relay)
    if account is not None:
        conn.reply(
            n.RPL_LOGGEDIN,
            f"{conn.name}!{conn.user or '~u'}@{conn.display_host}",
            account,
            f"You are now logged in as {account}",
        )
        if conn.registered:
            history.deliver_pending(conn)
    else:
        conn.reply(
            n.RPL_LOGGEDOUT,
            f"{conn.name}!{conn.user or '~u'}@{conn.display_host}",
            "You are now logged out",
        )


def login_with_pass(conn: Connection) -> bool:
    """``PASS <account>:<password>`` (as on Ergo), at registration. False: refused."""
    name, sep, password = (conn.password or "").partition(":")
    if not sep or conn.account is not None:
        return True
    if conn.server.store is None:
        conn.notice(f"Not logged in: {NO_DATABASE}")
        return True
    account = check_login(conn, name, password)
    if account is None:
        return False
    set_account(conn, account)
    return True


# -- AUTHENTICATE (SASL PLAIN) --------------------------------------------------------------


@command("AUTHENTICATE", 1, before_registration=True)
def authenticate(conn: Connection, msg: Message) -> None:
    """AUTHENTICATE PLAIN, then AUTHENTICATE <base64 of account NUL account NUL password>
    — log in with SASL (in 400-byte pieces; AUTHENTICATE * aborts)."""
    arg = msg.params[0]
    if arg == "*":
        conn.sasl = None
        conn.reply(n.ERR_SASLABORTED, "SASL authentication aborted")
        return
    if conn.account is not None:
        conn.reply(n.ERR_SASLALREADY, "You have already authenticated using SASL")
        return
    if conn.sasl is None:
        if conn.server.store is None:
            conn.reply(n.ERR_SASLFAIL, f"SASL authentication failed: {NO_DATABASE}")
        elif arg.upper() != "PLAIN":
            conn.reply(n.RPL_SASLMECHS, "PLAIN", "are available SASL mechanisms")
            conn.reply(n.ERR_SASLFAIL, "SASL authentication failed")
        else:
            conn.sasl = bytearray()
            conn.send(Message("AUTHENTICATE", ("+",), conn.config.name))
        return
    if len(arg) > SASL_CHUNK or len(conn.sasl) + len(arg) > SASL_MAX:
        conn.sasl = None
        conn.reply(n.ERR_SASLTOOLONG, "SASL message too long")
        return
    if arg != "+":
        conn.sasl += arg.encode()
    if len(arg) == SASL_CHUNK:  # more to come (a last piece of "+" if none)
        return
    payload, conn.sasl = bytes(conn.sasl), None
    try:
        authzid, authcid, password = base64.b64decode(payload, validate=True).split(b"\0")
        name, secret = authcid.decode(), password.decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        conn.reply(n.ERR_SASLFAIL, "SASL authentication failed: malformed PLAIN message")
        return
    if authzid and authzid != authcid:
        conn.reply(n.ERR_SASLFAIL, "SASL authentication failed: cannot log in as another")
        return
    account = check_login(conn, name, secret)
    if account is None:
        conn.reply(n.ERR_SASLFAIL, "SASL authentication failed: invalid account or password")
        return
    set_account(conn, account)
    conn.reply(n.RPL_SASLSUCCESS, "SASL authentication successful")


def abort_sasl(conn: Connection) -> None:
    """Registration ends while SASL is under way: "the server SHOULD abort it and send a
    906 numeric, then register the client without an account" (IRCv3 SASL 3.1)."""
    if conn.sasl is not None:
        conn.sasl = None
        conn.reply(n.ERR_SASLABORTED, "SASL authentication aborted")


# -- REGISTER -------------------------------------------------------------------------------


@command("REGISTER", 3, before_registration=True)
def register(conn: Connection, msg: Message) -> None:
    """REGISTER <account|*> <email|*> <password> — register your nick as an account, and
    log in to it."""
    wanted, _, password = msg.params[:3]
    error = create(conn, wanted, password)
    if error is not None:
        code, text = error
        conn.send(Message("FAIL", ("REGISTER", code, wanted, text), conn.config.name))
        return
    conn.send(Message("REGISTER", ("SUCCESS", conn.name, "Account created"), conn.config.name))


def create(conn: Connection, wanted: str, password: str) -> tuple[str, str] | None:
    """Register ``conn``'s nick (``wanted`` must be it, or ``*``) with ``password`` and log
    in. Returns None, or the draft/account-registration FAIL code and a message."""
    store = conn.server.store
    if store is None:
        return "TEMPORARILY_UNAVAILABLE", NO_DATABASE
    if conn.account is not None:
        return "ALREADY_AUTHENTICATED", f"You are already logged in as {conn.account}"
    if conn.nick is None:
        return "NEED_NICK", "Choose a nick (NICK) first: the account is named after it"
    if wanted != "*" and conn.world.fold(wanted) != conn.folded_nick:
        return "ACCOUNT_NAME_MUST_BE_NICK", "The account name must be your current nick"
    if len(password) < MIN_PASSWORD or password == "*":
        return "WEAK_PASSWORD", f"The password must have at least {MIN_PASSWORD} characters"
    slot = _reserve_registration(conn, time.monotonic())
    if slot is None:
        return "TEMPORARILY_UNAVAILABLE", "Too many accounts registered from your address lately"
    nick, folded = conn.nick, conn.folded_nick
    stored = hash_password(password)
    # A name taken counts as a failed login does, per address and per account: guessing
    # which names are registered is slowed down as guessing passwords is.
    if not throttled(
        conn, _throttle_keys(conn, folded), lambda: store.create_account(folded, nick, stored)
    ):
        _release_registration(conn, slot)
        return "ACCOUNT_EXISTS", f"{nick} is already registered"
    log.info("account %s registered from %s", nick, conn.host)
    set_account(conn, nick)
    return None


def _reserve_registration(conn: Connection, now: float) -> float | None:
    """Count a registration from ``conn``'s address at ``now``, if ``account_limit`` in
    ``account_window`` allows one more; returns its slot (None: refused). Reserved before
    the database is asked, so that connections from one address cannot all slip in
    between a check and a count."""
    config, world = conn.config, conn.world
    if not config.account_limit or conn.exempt:
        return now
    with world.lock:
        since = now - config.account_window
        for host in [h for h, t in world.registrations.items() if not t or t[-1] <= since]:
            del world.registrations[host]  # (bounded: addresses quiet for a window go)
        recent = world.registrations.setdefault(conn.host, deque())
        while recent and recent[0] <= since:
            recent.popleft()
        if len(recent) >= config.account_limit:
            return None
        recent.append(now)
        return now


def _release_registration(conn: Connection, slot: float) -> None:
    """Give back a slot whose registration failed."""
    with conn.world.lock:
        recent = conn.world.registrations.get(conn.host)
        if recent is not None and slot in recent:
            recent.remove(slot)


# -- nick enforcement -----------------------------------------------------------------------


def owner_of(conn: Connection, nick: str) -> str | None:
    """The account that owns ``nick`` (as registered), if it is registered."""
    store = conn.server.store
    if store is None:
        return None
    account = store.account(conn.world.fold(nick))
    return account.name if account is not None else None


def owns(conn: Connection, folded_nick: str) -> bool:
    return conn.account is not None and conn.world.fold(conn.account) == folded_nick


def watch_nick(conn: Connection) -> None:
    """``conn`` now has its nick (registered, or renamed): if an account it is not logged
    in to owns it, warn it and start the clock (:func:`enforce`)."""
    if conn.nick is None or owns(conn, conn.folded_nick) or owner_of(conn, conn.nick) is None:
        conn.nick_deadline = None
        return
    if not conn.registered:  # in time to log in with SASL or PASS; the clock starts later
        service_notice(
            conn,
            f"{conn.nick} is a registered account: log in with SASL, or with "
            f"PASS {conn.nick}:<password>.",
        )
        return
    grace = conn.config.nick_grace
    conn.nick_deadline = time.monotonic() + grace
    service_notice(
        conn,
        f"{conn.nick} is a registered account. Log in within {grace:g} seconds "
        f"(/msg {SERVICE} IDENTIFY <password>) or your nick will be changed.",
    )


def enforce(conn: Connection, now: float) -> None:
    """The housekeeping check: rename ``conn`` if its grace period is over."""
    deadline = conn.nick_deadline
    if deadline is None or now < deadline or conn.quit_reason is not None:
        return
    conn.nick_deadline = None
    with conn.world.lock:  # checked and renamed at once: it may log in or move meanwhile
        if conn.registered and conn.nick is not None and not owns(conn, conn.folded_nick):
            service_notice(conn, f"{conn.nick} is registered to someone else: you are renamed.")
            to_guest(conn)


def to_guest(conn: Connection) -> None:
    """Rename ``conn`` to a free ``Guest<n>`` nick, as a NICK change everyone sees."""
    from chatcli.server.handlers.registration import rename

    world = conn.world
    with world.lock:
        while True:
            guest = f"Guest{secrets.randbelow(100_000):05d}"
            if world.fold(guest) not in world.nicks:
                break
        rename(conn, guest)


# -- NickServ -------------------------------------------------------------------------------


def service_notice(conn: Connection, text: str, source: str = SERVICE_SOURCE) -> None:
    conn.send(Message("NOTICE", (conn.name, text), source))


def is_service(world: World, target: str) -> bool:
    return world.fold(target.split("@", 1)[0]) in RESERVED


def to_service(conn: Connection, target: str, msg: Message) -> bool:
    """The messaging hook: if ``target`` is a service, ``msg`` is for it (only a PRIVMSG is
    answered). Returns whether it was. Call without the world lock."""
    if not is_service(conn.world, target):
        return False
    if msg.command == "PRIVMSG" and len(msg.params) > 1:
        if conn.world.fold(target.split("@", 1)[0]) == "chanserv":
            from chatcli.server.handlers.rooms import chanserv_command

            chanserv_command(conn, msg.params[1])
        else:
            nickserv_command(conn, msg.params[1])
    return True


@command("NICKSERV", 1)
def nickserv(conn: Connection, msg: Message) -> None:
    """NICKSERV <command> [<args>] — talk to NickServ (same as /msg NickServ ...)."""
    nickserv_command(conn, " ".join(msg.params))


@command("NS", 1)
def ns(conn: Connection, msg: Message) -> None:
    """NS <command> [<args>] — short for NICKSERV."""
    nickserv_command(conn, " ".join(msg.params))


NICKSERV_HELP = (
    "NickServ keeps registered nicks (accounts). Commands:",
    "REGISTER <password> — register your current nick",
    "IDENTIFY [<account>] <password> — log in",
    "INFO [<account>] — whether a nick is registered, and since when",
    "SET PASSWORD <new password> — change your password (logged in)",
    "DROP — delete your account (logged in)",
)


def nickserv_command(conn: Connection, text: str) -> None:
    """Run one NickServ command, answered with NOTICEs from NickServ."""
    verb, *args = text.split() or ["HELP"]
    verb = verb.upper()
    store = conn.server.store
    if verb == "HELP":
        for line in NICKSERV_HELP:
            service_notice(conn, line)
    elif store is None:
        service_notice(conn, NO_DATABASE + ".")
    elif verb == "REGISTER":
        if not args:
            service_notice(conn, "Usage: REGISTER <password>")
            return
        error = create(conn, "*", args[0])
        service_notice(conn, error[1] if error else f"Account {conn.account} registered.")
    elif verb in ("IDENTIFY", "LOGIN"):
        _identify(conn, args)
    elif verb == "INFO":
        name = args[0] if args else (conn.account or conn.name)
        account = store.account(conn.world.fold(name))
        if account is None:
            service_notice(conn, f"{name} is not registered.")
        else:
            since = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(account.created))
            service_notice(conn, f"Account {account.name}, registered {since}.")
    elif verb == "SET" and len(args) == 2 and args[0].upper() == "PASSWORD":
        if conn.account is None:
            service_notice(conn, "Log in first.")
        elif len(args[1]) < MIN_PASSWORD:
            service_notice(conn, f"The password must have at least {MIN_PASSWORD} characters.")
        else:
            store.set_password(conn.world.fold(conn.account), hash_password(args[1]))
            service_notice(conn, "Password changed.")
    elif verb == "DROP":
        if conn.account is None:
            service_notice(conn, "Log in first: DROP deletes the account you are logged in to.")
            return
        name = conn.account
        store.drop_account(conn.world.fold(name))
        set_account(conn, None)
        service_notice(conn, f"Account {name} dropped.")
    else:
        service_notice(conn, f"Unknown command {verb}. /msg {SERVICE} HELP lists them.")


def _identify(conn: Connection, args: list[str]) -> None:
    if not args or len(args) > 2:
        service_notice(conn, "Usage: IDENTIFY [<account>] <password>")
        return
    if conn.account is not None:
        service_notice(conn, f"You are already logged in as {conn.account}.")
        return
    name, password = (args[0], args[1]) if len(args) == 2 else (conn.name, args[0])
    account = check_login(conn, name, password)
    if account is None:
        service_notice(conn, "Invalid account or password.")
        return
    set_account(conn, account)
    service_notice(conn, f"You are now logged in as {account}.")
