"""Accounts: REGISTER, SASL PLAIN, the NickServ service, and who may keep a registered nick.

* ``REGISTER <account> <email|*> <password>`` (IRCv3 ``draft/account-registration``,
  https://ircv3.net/specs/extensions/account-registration) registers the current nick as an
  account and logs in to it. As on Ergo the account name must be the nick, and it works
  before connection registration (``before-connect``).
* ``AUTHENTICATE`` (IRCv3 SASL 3.1/3.2, mechanism PLAIN) and ``PASS <account>:<password>``
  log in; so does ``NickServ IDENTIFY`` for clients that know nothing else.
* A registered nick belongs to its account. With ``nick_reservation = "timeout"`` (the
  default) whoever else holds it is told to log in and, after ``ServerConfig.nick_grace``
  seconds, renamed to a ``Guest`` nick (Ergo's "timeout" method); the owner, logged in,
  takes it back with ``NICK``. With ``"strict"`` nobody else may take it at all: it is
  used by logging in with SASL or PASS as one connects. Either way, direct messages to it
  reach only a connection logged in to the account: while someone else holds the nick
  they wait for the owner, as they do while the owner is offline.
* An account has a stable identity (:attr:`chatcli.server.store.Account.identity`), by
  which history, waiting messages and rooms know it. Dropping it (``NickServ DROP``) logs
  out its connections, deletes its direct conversations and waiting messages, hands its
  rooms to another of their registered operators (or unregisters them), and keeps its
  name reserved until a server operator frees it (``NickServ ERASE``): nobody inherits an
  account, its messages or its rooms.

Passwords are checked on the connection's own thread and never under the world lock, each
check counted against the throttles of :mod:`chatcli.server.logins` before it hashes.
Passwords are never logged.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
import time
from typing import TYPE_CHECKING

from chatcli.passwords import check_nothing, hash_password, verify_password
from chatcli.protocol import Message, caps
from chatcli.protocol import numerics as n
from chatcli.server import history, logins
from chatcli.server.admission import give_back, take_slot
from chatcli.server.commands import command
from chatcli.server.errors import NicknameInUse
from chatcli.server.handlers import metadata, monitor
from chatcli.server.handlers.rooms import forget_account
from chatcli.server.logins import account_key, address_key, guarded
from chatcli.server.nicks import rename
from chatcli.server.services import NO_DATABASE, service_notice
from chatcli.server.tags import Relay

if TYPE_CHECKING:
    from chatcli.server.connection import Connection
    from chatcli.server.state import World
    from chatcli.server.store import Account

log = logging.getLogger("chatcli.server")

SERVICE = "NickServ"
#: Nicks nobody may take (folded, and the same under every casemapping).
RESERVED = frozenset({"nickserv", "chanserv"})
MIN_PASSWORD = 4
SASL_CHUNK = 400  # IRCv3 SASL: payloads come in 400-byte pieces
SASL_MAX = 4096  # more than any PLAIN payload needs
#: nick_reservation settings: see the module's docstring.
TIMEOUT, STRICT = "timeout", "strict"


# -- logging in and out ---------------------------------------------------------------------


def _keys(conn: Connection, folded: str) -> tuple[str, str]:
    return (address_key(conn), account_key(folded))


def check_login(conn: Connection, name: str, password: str) -> Account | None:
    """The account ``name`` if ``password`` is its password, else None. An unknown or
    dropped account takes as long as a wrong password. Slow on purpose (scrypt, and the
    throttles of :mod:`chatcli.server.logins`); never hold the lock."""
    store = conn.server.store
    if store is None or not name:
        return None
    folded = conn.world.fold(name)
    account = store.account(folded)
    usable = account is not None and account.dropped is None

    def check() -> bool:
        if account is None or not usable:
            return check_nothing(password)
        return verify_password(password, account.password)

    if not guarded(conn, _keys(conn, folded), check):
        log.info("failed login to %r from %s", name, conn.host)
        return None
    return account


def set_account(conn: Connection, account: Account | None, *, actor: Connection) -> None:
    """Log ``conn`` in to ``account`` (None: out), and tell who shares a room with it
    (IRCv3 account-notify: ``ACCOUNT <name>``, or ``ACCOUNT *`` on logout). ``actor`` is
    the connection whose command does it: ``conn`` itself, or (logging it out) another."""
    world = conn.world
    name = account.name if account is not None else None
    with world.lock:
        if conn.account_id == (account.id if account is not None else None):
            return
        conn.account = name
        world.log_in(conn, account.id if account is not None else None)
        if name is not None and world.fold(name) == conn.folded_nick:
            conn.nick_deadline = None
        world.person_changed(conn)
        if conn.registered:
            relay = Relay(Message("ACCOUNT", (name or "*",), conn.source), account=name)
            peers = monitor.told_of(conn, caps.ACCOUNT_NOTIFY)
            world.relay_to(peers, relay, actor=actor)
    metadata.account_changed(conn)
    told = conn.told_by(actor)
    if name is not None:
        told.reply(
            n.RPL_LOGGEDIN,
            f"{conn.name}!{conn.user or '~u'}@{conn.display_host}",
            name,
            f"You are now logged in as {name}",
        )
        if conn.registered and actor is conn:
            history.deliver_pending(conn)
    else:
        told.reply(
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
    set_account(conn, account, actor=conn)
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
    set_account(conn, account, actor=conn)
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
    in. Returns None, or the draft/account-registration FAIL code and a message.

    Whether the name is free is asked first, and a name taken (or kept by a dropped
    account) counts as a failed login does, per address and per account: guessing which
    names are registered is slowed down as guessing passwords is, and costs no hash."""
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
    nick, folded = conn.nick, conn.folded_nick
    if folded.startswith("guest") and folded[5:].isascii() and folded[5:].isdigit():
        return "BAD_ACCOUNT_NAME", "Guest nicks are given out by the server: choose another"
    taken = ("ACCOUNT_EXISTS", f"{nick} is already registered")
    keys = _keys(conn, folded)
    if store.account(folded) is not None:
        if logins.wait_after_failures(conn, keys):
            logins.note(conn.world, keys, failed=True)
        return taken
    slot = _reserve_registration(conn, conn.server.clock())
    if slot is None:
        return "TEMPORARILY_UNAVAILABLE", "Too many accounts registered from your address lately"
    made: list[Account] = []

    def register() -> bool:
        account = store.create_account(folded, nick, hash_password(password))
        made.extend([account] if account is not None else [])
        return account is not None

    if not guarded(conn, keys, register):  # taken meanwhile, or the connection ended
        _release_registration(conn, slot)
        return taken
    log.info("account %s registered from %s", nick, conn.host)
    set_account(conn, made[0], actor=conn)
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
        allowed = take_slot(
            world.registrations, conn.host, now, config.account_limit, config.account_window
        )
    return now if allowed else None


def _release_registration(conn: Connection, slot: float) -> None:
    """Give back a slot whose registration failed."""
    with conn.world.lock:
        give_back(conn.world.registrations, conn.host, slot)


# -- nick enforcement -----------------------------------------------------------------------


def owner_of(conn: Connection, nick: str) -> Account | None:
    """The account that owns ``nick``, if it is registered (and not dropped). Reads the
    database: call without the world lock."""
    store = conn.server.store
    if store is None:
        return None
    account = store.account(conn.world.fold(nick))
    return account if account is not None and account.dropped is None else None


def owns(conn: Connection, folded_nick: str) -> bool:
    return conn.account is not None and conn.world.fold(conn.account) == folded_nick


def claim_of(conn: Connection, nick: str) -> Account | None:
    """The account that owns ``nick`` if ``conn`` is not logged in to it: whom ``conn``
    would hold it for. Reads the database: call without the world lock, before taking
    the nick, and pass the answer to :func:`hold`."""
    if owns(conn, conn.world.fold(nick)):
        return None
    return owner_of(conn, nick)


def refuse_strict(conn: Connection, nick: str, owner: Account | None) -> None:
    """With ``nick_reservation = "strict"``, a registered nick is not to be taken by
    someone not logged in to it.

    Raises:
        NicknameInUse: it is.
    """
    if owner is not None and conn.config.nick_reservation == STRICT:
        raise NicknameInUse(
            nick,
            text=f"{nick} is a registered account: log in to it with SASL or "
            f"PASS {nick}:<password> as you connect, or choose another nick",
        )


def hold(conn: Connection, owner: Account | None) -> None:
    """``conn``, registered, has just taken a nick that ``owner`` owns (None: nobody else
    does): start its grace period. Until it ends, direct messages to the nick wait for
    the owner (see :mod:`chatcli.server.handlers.messaging`). Caller holds the world
    lock, the same hold in which the nick was taken: there is no moment in which someone
    else's messages could reach it."""
    conn.world.assert_held()
    owned = owner is not None and conn.registered and not owns(conn, conn.folded_nick)
    conn.nick_deadline = time.monotonic() + conn.config.nick_grace if owned else None
    conn.world.person_changed(conn)  # (a cluster's other nodes hold messages for it too)


def holds_for_another(conn: Connection) -> bool:
    """Whether ``conn`` holds a nick registered to an account it is not logged in to.
    Caller holds the world lock."""
    conn.world.assert_held()
    return conn.nick_deadline is not None


def warn_holder(conn: Connection, owner: Account | None) -> None:
    """Tell ``conn`` that its nick is someone else's account, and what to do."""
    if owner is None or conn.nick is None or owns(conn, conn.folded_nick):
        return
    if not conn.registered:  # in time to log in with SASL or PASS; the clock starts later
        if caps.SASL in conn.caps:
            return  # (it is about to log in; if it does not, it is told once registered)
        service_notice(
            conn,
            f"{conn.nick} is a registered account: log in with SASL, or with "
            f"PASS {conn.nick}:<password>.",
        )
        return
    service_notice(
        conn,
        f"{conn.nick} is a registered account. Log in within {conn.config.nick_grace:g} "
        f"seconds (/msg {SERVICE} IDENTIFY <password>) or your nick will be changed; "
        "messages to it meanwhile wait for its owner.",
    )


def enforce(conn: Connection, now: float) -> None:
    """The housekeeping check: rename ``conn`` if its grace period is over."""
    deadline = conn.nick_deadline
    if deadline is None or now < deadline or conn.quit_reason is not None:
        return
    with conn.world.lock:  # checked and renamed at once: it may log in or move meanwhile
        if conn.nick_deadline is None or conn.quit_reason is not None:
            return
        if conn.registered and conn.nick is not None and not owns(conn, conn.folded_nick):
            text = f"{conn.nick} is registered to someone else: you are renamed."
            service_notice(conn.delivery, text)
            to_guest(conn, actor=None)
        conn.nick_deadline = None
        conn.world.person_changed(conn)


def to_guest(conn: Connection, *, actor: Connection | None) -> None:
    """Rename ``conn`` to a free ``Guest<n>`` nick, as a NICK change everyone sees. Caller
    holds the world lock (it checked that the nick must go, in the same hold)."""
    world = conn.world
    world.assert_held()
    while True:
        guest = f"Guest{secrets.randbelow(100_000):05d}"
        if world.fold(guest) not in world.nicks:
            break
    rename(conn, guest, actor=actor)
    conn.nick_deadline = None  # no account is named Guest<n>: see create()
    world.person_changed(conn)


# -- NickServ -------------------------------------------------------------------------------


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
    "SET PASSWORD <current password> <new password> — change your password",
    "DROP <password> — delete your account and your direct messages; the name stays reserved",
    "ERASE <account> — free a dropped account's name (server operators)",
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
        _info(conn, args[0] if args else (conn.account or conn.name))
    elif verb == "SET" and args and args[0].upper() == "PASSWORD":
        _set_password(conn, args[1:])
    elif verb == "DROP":
        _drop(conn, args)
    elif verb == "ERASE":
        _erase(conn, args)
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
    set_account(conn, account, actor=conn)
    service_notice(conn, f"You are now logged in as {account.name}.")


def _info(conn: Connection, name: str) -> None:
    store = conn.server.store
    assert store is not None
    account = store.account(conn.world.fold(name))
    if account is None:
        service_notice(conn, f"{name} is not registered.")
    elif account.dropped is not None:
        service_notice(conn, f"{account.name} was dropped; the name stays reserved.")
    else:
        since = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(account.created))
        service_notice(conn, f"Account {account.name}, registered {since}.")


def _set_password(conn: Connection, args: list[str]) -> None:
    """SET PASSWORD <current> <new>: the current password first, so that a session left
    open (or taken over) cannot lock its owner out."""
    store = conn.server.store
    account_id, name = conn.account_id, conn.account
    if store is None or account_id is None or name is None:
        service_notice(conn, "Log in first.")
        return
    if len(args) != 2:
        service_notice(conn, "Usage: SET PASSWORD <current password> <new password>")
        return
    current, new = args
    if len(new) < MIN_PASSWORD:
        service_notice(conn, f"The password must have at least {MIN_PASSWORD} characters.")
        return

    def change() -> bool:
        account = store.account_by_id(account_id)
        if account is None or account.dropped is not None:
            return check_nothing(current)
        if not verify_password(current, account.password):
            return False
        store.set_password(account_id, hash_password(new))
        return True

    if guarded(conn, _keys(conn, conn.world.fold(name)), change, hashes=2):
        service_notice(conn, "Password changed.")
    else:
        service_notice(conn, "The current password is not right: the password is unchanged.")


def _drop(conn: Connection, args: list[str]) -> None:
    if conn.account is None:
        service_notice(conn, "Log in first: DROP deletes the account you are logged in to.")
        return
    if len(args) != 1:
        service_notice(
            conn,
            "Usage: DROP <password>. It deletes your account and your direct messages; "
            "your rooms pass to their other operators.",
        )
        return
    account = check_login(conn, conn.account, args[0])
    if account is None or account.id != conn.account_id:
        service_notice(conn, "Invalid password: the account is kept.")
        return
    drop(conn, account)
    service_notice(conn, f"Account {account.name} dropped; the name stays reserved.")


def drop(conn: Connection, account: Account) -> None:
    """Drop ``account`` (see the module's docstring): every connection logged in to it is
    logged out first, then its rooms are handed on, then the database forgets it."""
    store = conn.server.store
    assert store is not None
    world = conn.world
    with world.lock:
        holders = [p for p in world.by_account.get(account.id, ()) if p in world.connections]
    for holder in holders:
        set_account(holder, None, actor=conn)
    forget_account(world, account, conn.config.room)
    store.drop_account(account.id)
    log.info("account %s dropped from %s", account.name, conn.host)


def _erase(conn: Connection, args: list[str]) -> None:
    store = conn.server.store
    assert store is not None
    if "o" not in conn.modes:
        service_notice(conn, "Only server operators may erase a dropped account's name.")
    elif len(args) != 1:
        service_notice(conn, "Usage: ERASE <account>")
    elif store.erase_account(conn.world.fold(args[0])):
        log.info("dropped account %s erased by %s", args[0], conn.name)
        service_notice(conn, f"{args[0]} is free to be registered again.")
    else:
        service_notice(conn, f"{args[0]} is not a dropped account.")
