"""The ``chat`` command: ``serve``, ``join`` and ``send``.

Each subcommand turns its options into configuration and makes one library call. Expected
failures are :class:`~chatcli.errors.ChatError`: one line on stderr and the exit status it
carries (see :class:`~chatcli.errors.ExitStatus` and the README).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from chatcli import __version__
from chatcli.config import ServerConfig
from chatcli.defaults import (
    BACKUP_TIMEOUT,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_ROOM,
    SEND_TIMEOUT,
    data_dir,
    default_alias,
)
from chatcli.errors import ChatError, ConfigError, fail_cleanly
from chatcli.files import how_to_fix, readable_by_others

F = TypeVar("F", bound=Callable[..., Any])

# Imports are kept lazy: `chat send` runs from cron and scripts, and its start-up time is
# mostly the imports (benchmarks/ measures it against `python3 -c pass`).

PORT = click.IntRange(0, 65535)


def connection_options(func: F) -> F:
    for option in reversed(
        [
            click.option(
                "--host",
                default=DEFAULT_HOST,
                show_default=True,
                envvar="CHAT_HOST",
                help="Server address (or set CHAT_HOST).",
            ),
            click.option(
                "--port",
                type=PORT,
                default=DEFAULT_PORT,
                show_default=True,
                envvar="CHAT_PORT",
                help="Server port (or set CHAT_PORT).",
            ),
            click.option(
                "--password",
                envvar="CHAT_PASSWORD",
                help="Server password, if the server has one (or set CHAT_PASSWORD).",
            ),
            click.option(
                "--tls",
                is_flag=True,
                envvar="CHAT_TLS",
                help="Connect with TLS (or set CHAT_TLS=1). The certificate is checked against "
                "the system's authorities; one they do not vouch for (self-signed) is, on a "
                "terminal with chat join, shown and remembered on a yes; elsewhere refused: "
                "pin it with "
                "--tls-fingerprint (see the README).",
            ),
            click.option(
                "--tls-fingerprint",
                metavar="FP",
                help="Accept only the certificate with this SHA-256 fingerprint (implies --tls).",
            ),
            click.option(
                "--insecure",
                is_flag=True,
                callback=_warn_insecure,
                help="TLS without checking the certificate at all (implies --tls; not "
                "recommended).",
            ),
        ]
    ):
        func = option(func)
    return func


def _warn_insecure(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        click.echo(
            "chat: warning: --insecure: the server's certificate is not checked; anyone "
            "between you and the server could read and change what is said",
            err=True,
        )
    return value


ACCOUNT_PASSWORD_FILE = click.option(
    "--account-password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file holding your account's password, used if your alias is registered "
    "(else CHAT_ACCOUNT_PASSWORD, else a prompt).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="chat")
def main() -> None:
    """chatcli: a self-hosted terminal chat that speaks IRC.

    Start a server with `chat serve`, talk with `chat join`, script with `chat send`.
    Any IRC client can join the same server.
    """


@main.command()
@click.option(
    "--host",
    default=DEFAULT_HOST,
    show_default=True,
    help="Address to listen on ('::' for IPv6, '' for every address).",
)
@click.option(
    "--port",
    type=PORT,
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to listen on; 0 picks a free one.",
)
@click.option(
    "--name", default="chatcli.local", show_default=True, help="Server name shown to clients."
)
@click.option(
    "--room",
    default=DEFAULT_ROOM,
    show_default=True,
    help="The default room: `chat join` users land in it, and the MOTD names it.",
)
@click.option(
    "--motd",
    type=click.Path(exists=True, dir_okay=False),
    help="File with the message of the day.",
)
@click.option(
    "--password",
    envvar="CHAT_SERVER_PASSWORD",
    help="Password clients must give to connect (or set CHAT_SERVER_PASSWORD).",
)
@click.option("--tls", is_flag=True, help="Speak TLS on --port (see --tls-cert; else self-signed).")
@click.option(
    "--tls-port",
    type=PORT,
    help="Also listen for TLS on this port (6697 by convention), beside plaintext --port.",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False),
    help="TLS certificate chain (PEM)  [default: a self-signed one, made in your data "
    "directory on first use]",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False),
    help="The certificate's private key (PEM)  [default: in the --tls-cert file]",
)
@click.option(
    "--web-port",
    type=PORT,
    help="Also serve HTTP on this port (HTTPS when TLS is on): /healthz for probes and "
    "/metrics for Prometheus. 0 picks a free port.",
)
@click.option(
    "--flood-rate",
    type=click.FloatRange(min=0),
    default=ServerConfig.flood_rate,
    show_default=True,
    help=f"Commands a second each client may send after a burst of {ServerConfig.flood_burst};"
    " 0 turns flood control off.",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False),
    help="The database (accounts, rooms, history): a SQLite file, or PostgreSQL's "
    "postgresql://user@host/dbname  [default: chat.db in your data directory]",
)
@click.option("--no-db", is_flag=True, help="Keep nothing: no accounts, no history.")
@click.option(
    "--cluster",
    metavar="URL",
    help="Be one node of a cluster sharing this Redis (redis://host:port/db): one chat "
    "across all its nodes.",
)
@click.option(
    "--history-lines",
    type=click.IntRange(min=0),
    default=ServerConfig.replay_lines,
    show_default=True,
    help="Lines of a room's history shown to who joins it.",
)
@click.option(
    "--history-keep",
    type=click.IntRange(min=1),
    default=ServerConfig.history_per_target,
    show_default=True,
    help="Messages kept per room or conversation.",
)
@click.option(
    "--history-days",
    type=click.FloatRange(min=0),
    default=ServerConfig.history_days,
    show_default=True,
    help="Days messages are kept (0: as long as --history-keep allows).",
)
@click.option(
    "--oper",
    "operators",
    multiple=True,
    metavar="NAME:HASH",
    help="A server operator and the hash of their password, from `chat hash-password`.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A TOML file of settings (see --print-config); options given here win over it.",
)
@click.option(
    "--print-config",
    is_flag=True,
    help="Print every setting, commented, at its default (a --config file to start from).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="warning",
    show_default=True,
    help="How much to log to stderr.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"], case_sensitive=False),
    default="text",
    show_default=True,
    help="The log's form: lines for people, or one JSON object a line (time, level, "
    "logger, event...) for log collectors.",
)
@fail_cleanly
def serve(
    host: str,
    port: int,
    name: str,
    room: str,
    motd: str | None,
    password: str | None,
    tls: bool,
    tls_port: int | None,
    tls_cert: str | None,
    tls_key: str | None,
    web_port: int | None,
    flood_rate: float,
    db: str | None,
    no_db: bool,
    cluster: str | None,
    history_lines: int,
    history_keep: int,
    history_days: float,
    operators: tuple[str, ...],
    config_file: Path | None,
    print_config: bool,
    log_level: str,
    log_format: str,
) -> None:
    """Run a chat server (an IRC server) until Ctrl-C or SIGTERM."""
    import signal

    from chatcli import logs, sdnotify, settings
    from chatcli.passwords import is_password_hash
    from chatcli.server import ListenError, Server

    if print_config:
        click.echo(settings.commented_default())
        return

    logs.configure(log_level, log_format.lower())
    opers = []
    for entry in operators:
        oper_name, _, stored = entry.partition(":")
        if not oper_name or not is_password_hash(stored):
            raise ConfigError(f"--oper wants NAME:HASH (see chat hash-password), not {entry!r}")
        opers.append((oper_name, stored))
    context = click.get_current_context()
    made_certificate = False

    def load() -> ServerConfig:
        """The settings (see settings.resolve). Run again by REHASH and SIGHUP, which so
        re-read the --config file and the --motd file."""
        nonlocal made_certificate
        motd_lines: tuple[str, ...] = ()
        if motd is not None:
            try:
                text = Path(motd).read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                raise ConfigError(f"cannot read {motd}: {exc.strerror or exc}") from None
            motd_lines = tuple(text.splitlines())
        # Each option as the setting it gives (by the option's name).
        by_option = {
            "host": ("host", host),
            "port": ("port", port),
            "name": ("name", name),
            "room": ("room", room),
            "motd": ("motd", motd_lines),
            "password": ("password", password or None),
            "tls": ("tls", tls),
            "tls_port": ("tls_port", tls_port),
            "tls_cert": ("tls_cert", tls_cert),
            "tls_key": ("tls_key", tls_key),
            "web_port": ("web_port", web_port),
            "cluster": ("cluster", cluster),
            "flood_rate": ("flood_rate", flood_rate),
            "operators": ("operators", tuple(opers)),
            "history_lines": ("replay_lines", history_lines),
            "history_keep": ("history_per_target", history_keep),
            "history_days": ("history_days", history_days),
        }
        on_command_line = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
        options = {
            key: (value, context.get_parameter_source(option) in on_command_line)
            for option, (key, value) in by_option.items()
        }
        if no_db or db is not None:
            options["db"] = (None if no_db else db, True)
        config, made = settings.resolve(options, config_file, data_dir())
        made_certificate = made_certificate or made
        return config

    config = load()
    server = Server(config, reload_config=load, config_file=str(config_file or ""))
    try:
        bound_host, bound_port = server.bind()
    except ListenError as exc:
        raise ChatError(f"cannot listen on {exc.host}:{exc.port}: {exc.strerror}") from None

    # systemd (Type=notify) is told when the server is ready, reloading and stopping.
    systemd = sdnotify.Notifier.from_environment()

    def stop(signum: int, frame: object) -> None:
        systemd.stopping()
        server.request_stop()

    def rehash(signum: int, frame: object) -> None:
        systemd.reloading()  # and READY=1 once done: on_rehashed
        server.request_rehash()

    server.on_rehashed = systemd.ready

    # Before the banner: whoever waits for it may signal at once.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    if hasattr(signal, "SIGHUP"):  # (not on Windows)
        signal.signal(signal.SIGHUP, rehash)
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    on_host = "chat join" + ("" if config.host == DEFAULT_HOST else f" --host {bound_host}")

    def join_hint(port: int, secure: bool) -> str:
        return on_host + ("" if port == DEFAULT_PORT else f" --port {port}") + " --tls" * secure

    hint = join_hint(bound_port, config.tls)
    click.echo(f"chatcli serving {config.room} on {shown}:{bound_port} - join with: {hint}")
    if server.tls_address is not None:
        if not config.tls:
            tls_port = server.tls_address[1]
            click.echo(f"TLS on port {tls_port} - join with: {join_hint(tls_port, True)}")
        if made_certificate:
            click.echo(f"made a self-signed TLS certificate: {config.tls_cert}")
        click.echo(f"TLS certificate SHA-256 fingerprint: {server.tls_fingerprint}")
    if server.web_address is not None:
        scheme = "https" if config.wants_tls else "http"
        web_host, web_port = server.web_address
        web_shown = f"[{web_host}]" if ":" in web_host else web_host
        base = f"{scheme}://{web_shown}:{web_port}"
        click.echo(f"web on port {web_port} - health: {base}/healthz, metrics: {base}/metrics")
    if server.cluster is not None:
        click.echo(f"node {server.cluster.node} of the cluster on {server.cluster.where}")
    if config.db:
        from chatcli.dburl import shown

        click.echo(f"keeping accounts and history in {shown(config.db)}")
    else:
        click.echo("keeping nothing")
    sys.stdout.flush()

    # Thousands of connection threads woken at once (a ping or reconnect storm) all wait
    # for the GIL, and with the default 5 ms interval each of them wakes 200 times a
    # second to ask for it, starving the flusher: 10,000 PINGs took 20 s to answer. Our
    # threads give the GIL up at every system call anyway; with 0.1 s it takes 1.6 s.
    sys.setswitchinterval(0.1)
    _unpool_large_blocks()
    systemd.ready(f"serving {config.room} on {shown}:{bound_port}")
    try:
        server.serve_forever()
    finally:
        systemd.stopping()  # (unless a signal said so already)
        server.close()


def _unpool_large_blocks() -> None:
    """Give large freed blocks back to the system (glibc). By default glibc raises its
    threshold for mapping a block to the size of the largest one freed, so after the first
    login every 16 MiB scrypt comes from a thread's pool and stays resident in it: a burst
    of logins left the server at 390 MiB, not 26. A fixed threshold keeps them mapped, and
    unmapped when freed. And at most two pools (arenas) for all threads, not eight per
    core: what a thread frees stays in its pool, so with many threads the pools held a
    third of the server's memory after a soak (a 20-minute soak: 65 MiB, not 77, for the
    same CPU). Elsewhere (macOS, Windows, musl) there is nothing to do."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_mmap_threshold, m_arena_max = -3, -8  # from malloc.h
    mallopt(m_mmap_threshold, 1 << 20)
    mallopt(m_arena_max, 2)


@main.command("hash-password")
@fail_cleanly
def hash_password() -> None:
    """Print the hash of a password, for `chat serve --oper NAME:HASH`.

    The password is asked for twice on a terminal, or read as one line of standard input.
    """
    from chatcli.passwords import hash_password as make_hash

    if sys.stdin is not None and sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = (sys.stdin.readline() if sys.stdin else "").rstrip("\r\n")
    if not password:
        raise ConfigError("no password given")
    click.echo(make_hash(password))


@main.command()
@click.argument("dest", type=click.Path(path_type=Path))
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The database to back up  [default: chat.db in your data directory, as chat serve]",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The server's --config file: back up the database it names (--db wins over it).",
)
@click.option("--force", is_flag=True, help="Replace DEST if it exists.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    metavar="SECONDS",
    default=BACKUP_TIMEOUT,
    show_default=True,
    help="Seconds the backup may take.",
)
@fail_cleanly
def backup(
    dest: Path, db: Path | None, config_file: Path | None, force: bool, timeout: float
) -> None:
    """Copy the server's database to DEST (a file, or a directory), safely while it runs.

    For a SQLite database; one in PostgreSQL is backed up with pg_dump.

    The copy is checked (PRAGMA integrity_check) before it is put in place, and is private
    (0600) as the database is. To restore, stop the server and copy the file back (see the
    README).

    \b
    Exit status:
      0  the copy is made and checked
      1  it could not be (one line says why); DEST is left as it was
      2  usage error, or a wrong --config file
    """
    from chatcli.backup import backup as make_backup
    from chatcli.backup import human_size

    if db is None and config_file is not None:
        from chatcli import settings

        values = settings.load(config_file)
        if "db" in values and not values["db"]:
            raise ConfigError(f'{config_file} keeps no database (db = ""): nothing to back up')
        db = Path(values["db"]) if "db" in values else None
    from chatcli.dburl import is_url

    if db is not None and is_url(db):
        raise ConfigError("chat backup copies a SQLite database; back up PostgreSQL with pg_dump")
    made = make_backup(db or data_dir() / "chat.db", dest, force=force, timeout=timeout)
    click.echo(f"backed up {made.source} to {made.dest} ({human_size(made.size)}, checked)")


def _room_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``chat join --room``: a room name, ``#`` added if missing; refused (a usage error,
    exit 2) before connecting if no server could take it as one parameter."""
    from chatcli.protocol.names import CHANNELLEN, is_valid_channel

    if value is None:
        return None
    room = value if value.startswith("#") else "#" + value
    if not is_valid_channel(room):
        raise click.BadParameter(
            f"{value!r} is not a room name: '#' and up to {CHANNELLEN - 1} characters,"
            " no space, comma or colon"
        )
    return room


@main.command()
@click.option(
    "--alias",
    "-a",
    default=default_alias,
    show_default="your login name",
    envvar="CHAT_ALIAS",
    help="Your name in the chat (or set CHAT_ALIAS).",
)
@connection_options
@click.option(
    "--room",
    callback=_room_option,
    help="A room to join and talk in (everyone is also in the server's default room).",
)
@ACCOUNT_PASSWORD_FILE
@click.option(
    "--profile",
    "profile_name",
    metavar="NAME",
    envvar="CHAT_PROFILE",
    help="Use the server profile NAME of the client config file (or set CHAT_PROFILE)  "
    "[default: its default_profile]",
)
@click.option(
    "--print-config",
    is_flag=True,
    help="Print a commented client config file, every key explained, and exit (standard "
    "error says where chat join looks for it: redirect the output there).",
)
@click.option(
    "--plain",
    is_flag=True,
    help="Line mode even on a terminal: for screen readers and dumb terminals.",
)
@fail_cleanly
def join(
    alias: str,
    host: str,
    port: int,
    password: str | None,
    tls: bool,
    tls_fingerprint: str | None,
    insecure: bool,
    room: str | None,
    account_password_file: Path | None,
    profile_name: str | None,
    print_config: bool,
    plain: bool,
) -> None:
    """Chat interactively: plain text goes to the room, /help lists the commands.

    Without a terminal, each line of standard input is sent and the client quits at the end.
    If your alias is a registered account (/register), you are logged in to it. With --tls,
    a certificate no authority vouches for is shown, and remembered if you trust it.

    Server profiles, the ignore list and notifications are in the client config file
    (client.toml in your config directory, or $CHAT_CLIENT_CONFIG; see --print-config).
    The command line wins over the environment, which wins over the file.
    """
    from chatcli.client import profiles

    if print_config:
        click.echo(profiles.default_config_text(), nl=False)
        path = profiles.client_config_path()
        click.echo(f"chat: to use it, save it as {path}", err=True)
        return

    from chatcli.client.join import run_join
    from chatcli.client.oneshot import tls_policy
    from chatcli.client.session import ClientSession

    config = profiles.load_client_config()
    profile = config.profile(profile_name)
    given = _given_on_command_line(click.get_current_context())
    host = host if "host" in given or profile.host is None else profile.host
    port = port if "port" in given or profile.port is None else profile.port
    tls = tls if "tls" in given or profile.tls is None else profile.tls
    if "tls_fingerprint" not in given and not insecure:
        tls_fingerprint = profile.tls_fingerprint
    alias = alias if "alias" in given or profile.alias is None else profile.alias
    if "account_password_file" not in given:
        account_password_file = profile.account_password_file

    secret = account_password(account_password_file)
    terminal = sys.stdin is not None and sys.stdin.isatty() and sys.stdout.isatty()
    policy = tls_policy(tls, tls_fingerprint, insecure, ask=trust_prompt if terminal else None)
    session = ClientSession(
        host, port, alias, password=password, account_password=secret, tls=policy
    )
    sys.exit(int(run_join(session, room, plain=plain, config=config, rooms=profile.rooms)))


def _given_on_command_line(context: click.Context) -> set[str]:
    """The parameters the command line or the environment gave a value (which wins over a
    config file's): those whose value is not the option's default."""
    given = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    return {name for name in context.params if context.get_parameter_source(name) in given}


def trust_prompt(server: str, fingerprint: str, why: str) -> bool:
    """Ask whether to trust a certificate no authority vouches for (trust on first use)."""
    from chatcli.client.trust import default_known_servers

    click.echo(
        f"The TLS certificate of {server} is not vouched for by an authority this system "
        f"trusts ({why}: `chat serve --tls` makes such certificates).\n"
        f"Its SHA-256 fingerprint is\n\n  {fingerprint}\n\n"
        f"Compare it with the one the server's operator gives you (`chat serve --tls` prints "
        f"it).\nIf they differ, someone may be in the way: answer no.",
        err=True,
    )
    question = f"Trust it, and remember it in {default_known_servers()}?"
    try:
        return click.confirm(question, default=False, err=True)
    except click.Abort:  # Ctrl-C or end of input: no
        click.echo(err=True)
        return False


def account_password(path: Path | None) -> Callable[[str], str | None]:
    """Where an account password comes from: the file, else CHAT_ACCOUNT_PASSWORD, else a
    prompt on a terminal. Asked only once the server says the alias is a registered account,
    or, never with a prompt, when the alias is taken (by one's own other device, maybe: the
    session logs in to the account of that name under another alias)."""

    def ask(alias: str, sure: bool = True) -> str | None:
        if path is not None:
            try:
                secret = path.read_text(encoding="utf-8").strip() or None
            except OSError as exc:
                raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
            if readable_by_others(path):
                click.echo(
                    f"chat: warning: {path} (an account password) is open to other users: "
                    f"make it private with {how_to_fix([path])}",
                    err=True,
                )
            return secret
        if secret := os.environ.get("CHAT_ACCOUNT_PASSWORD"):
            return secret
        if sure and sys.stdin is not None and sys.stdin.isatty():
            prompt = f"{alias} is a registered account; password (empty: don't log in)"
            return click.prompt(prompt, hide_input=True, default="", show_default=False) or None
        return None

    return ask


@main.command()
@click.option(
    "--to", "target", default=DEFAULT_ROOM, show_default=True, help="A room (#name) or an alias."
)
@click.option(
    "--alias",
    "-a",
    envvar="CHAT_ALIAS",
    help="Name to send as, or set CHAT_ALIAS  [default: <login name>-send, with a number "
    "added if taken]",
)
@connection_options
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=SEND_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the server.",
)
@click.argument("message", nargs=-1)
@fail_cleanly
def send(**params: Any) -> None:
    """Send a message and exit 0 once the server has accepted it.

    The MESSAGE words are sent as one message; with none, each line of standard input is
    sent as a message. Nothing is printed on success.

    \b
    Exit status:
      0  every message was accepted
      1  another error
      2  usage error
      3  cannot connect, TLS certificate not trusted, or no confirmation in time
      4  alias invalid or in use
      5  no such person, or no such room (on a server without history)
      6  the server refused a message (moderated room, ban, password...)
    """
    from chatcli.client.oneshot import send_command

    send_command(**params)


@main.command()
@click.option(
    "--to",
    "target",
    default=DEFAULT_ROOM,
    show_default=True,
    help="A room (#name), or an alias: your conversation with them (needs an account).",
)
@click.option(
    "--alias",
    "-a",
    envvar="CHAT_ALIAS",
    help="Name to read as, or set CHAT_ALIAS  [default: <login name>-tail, with a number "
    "added if taken]",
)
@connection_options
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=SEND_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the server.",
)
@click.option(
    "--last",
    type=click.IntRange(min=0),
    metavar="N",
    help="Print the last N messages  [default: 10]",
)
@click.option(
    "--since",
    metavar="TIME",
    help="Print the messages since TIME: 2026-01-31T12:00 (local time unless it says), or 90s, "
    "10m, 2h, 1d ago.",
)
@click.option("--follow", "-f", is_flag=True, help="Then print new messages as they come.")
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="With --follow, stop after this many seconds  [default: at Ctrl-C]",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object a line: time, msgid, from, to, kind, text.",
)
@ACCOUNT_PASSWORD_FILE
@fail_cleanly
def tail(account_password_file: Path | None, **params: Any) -> None:
    """Print a room's last messages and, with --follow, new ones as they come.

    \b
    Exit status:
      0  done (or the reader of the output went away)
      1  another error
      2  usage error, or a conversation asked for without an account
      3  cannot connect, TLS certificate not trusted, no answer in time, or the
         connection was lost (with --follow only for the certificate: otherwise it
         waits and reconnects, as tail -F does)
      4  alias invalid or in use
      5  no such room (on a server without history)
      6  the server refused (ban, invite-only room, wrong password...)
    """
    from chatcli.client.tail import tail_command

    secret = account_password(account_password_file)
    tail_command(account_password=secret, **params)


if os.name == "nt":  # pragma: no cover - console encoding on Windows
    sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]
