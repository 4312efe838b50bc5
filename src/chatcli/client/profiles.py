"""``client.toml``: the settings of ``chat join`` in the user's config directory.

The file holds server profiles (``[profiles.NAME]``: host, port, TLS and its pin, alias,
account password file, rooms to join), the ignore list and the notification switches;
``chat join --print-config`` writes a commented default (:func:`default_config_text`).
What the command line or the environment gives wins over the file, which wins over the
options' defaults (``chatcli.cli`` applies that order).

Reading uses the standard library's :mod:`tomllib`. Writing back the ignore list (after
``/ignore`` in the chat) uses ``tomlkit``, which keeps the user's comments, order and layout.
Nothing else writes the file. Every problem in it stops ``chat join`` with the file, the
line where known, the key and the reason: an unknown key too, since a misspelt one would
otherwise be ignored without a word.

Imported by ``chat join`` only: ``chat send`` must not pay for it at start-up.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatcli.errors import ConfigError
from chatcli.protocol.masks import compile_mask
from chatcli.protocol.names import CHANNELLEN, NICKLEN, is_valid_channel, is_valid_nick

#: The environment variable naming another file than the usual ``client.toml``.
CONFIG_ENV = "CHAT_CLIENT_CONFIG"
#: The most masks the ignore list holds.
MAX_IGNORES = 200
#: The longest mask accepted: a nick, a user name and a host name of 253 characters.
MAX_MASK_LENGTH = 300
#: The most rooms a profile joins.
MAX_ROOMS = 50

_MASK_FORBIDDEN = re.compile(r"[\s,\x00-\x1f\x7f]")


def client_config_path() -> Path:
    """Where the client's config file is: ``$CHAT_CLIENT_CONFIG``, else ``client.toml`` in
    the user's config directory for chatcli (``~/.config/chatcli`` on Linux)."""
    if configured := os.environ.get(CONFIG_ENV):
        return Path(configured).expanduser()
    from platformdirs import user_config_path

    return user_config_path("chatcli", appauthor=False) / "client.toml"


@dataclass(frozen=True)
class Profile:
    """One server and how to be on it: each value None (or empty) when the file does not
    set it, so that the option's default applies."""

    name: str
    host: str | None = None
    port: int | None = None
    tls: bool | None = None
    tls_fingerprint: str | None = None  #: normalised (``AB:CD:...``)
    alias: str | None = None
    #: a file holding the account's password: never the password itself in the file
    account_password_file: Path | None = None
    #: joined after connecting; ``#`` added if missing, each a valid room name
    rooms: tuple[str, ...] = ()


class Ignores:
    """The ignore list: at most :data:`MAX_IGNORES` masks, each ``nick`` or
    ``nick!user@host`` with ``*`` and ``?`` as wildcards, matched ignoring case (ASCII).
    A bare nick means ``nick!*@*``. The masks keep the spelling they were given in (that
    is what is written back); two that differ only in case are the same mask.
    """

    def __init__(self, masks: Iterable[str] = ()) -> None:
        """Raises:
        ValueError: a mask is invalid, or there are too many."""
        self._masks: dict[str, str] = {}  # the full folded mask -> the mask as given
        for mask in masks:
            self.add(mask)

    @staticmethod
    def _full(mask: str) -> str:
        """``mask`` checked, in its ``nick!user@host`` form, folded.

        Raises:
            ValueError: it is not a mask.
        """
        if not mask:
            raise ValueError("an empty mask")
        if len(mask) > MAX_MASK_LENGTH:
            raise ValueError(f"a mask of more than {MAX_MASK_LENGTH} characters")
        if _MASK_FORBIDDEN.search(mask):
            raise ValueError(f"{mask!r}: a mask has no spaces, commas or control characters")
        if "!" not in mask and "@" not in mask:
            mask += "!*@*"
        nick, bang, rest = mask.partition("!")
        user, at, host = rest.partition("@")
        if not (bang and at and nick and user and host) or "!" in rest or "@" in host:
            raise ValueError(f"{mask!r} is not a mask: give nick or nick!user@host")
        return mask.lower()

    def matches(self, source: str) -> bool:
        """Whether the sender ``source`` (``nick!user@host``, or a bare ``nick`` when its
        host is not known) is ignored. A bare nick is matched as having an empty user and
        host, so only masks that allow any user and host match it."""
        if "!" not in source and "@" not in source:
            source += "!@"
        folded = source.lower()
        return any(compile_mask(full).matches(folded) for full in self._masks)

    def add(self, mask: str) -> bool:
        """Add ``mask``; False if it is there already.

        Raises:
            ValueError: it is not a mask, or the list is full.
        """
        full = self._full(mask)
        if full in self._masks:
            return False
        if len(self._masks) >= MAX_IGNORES:
            raise ValueError(f"the ignore list is full ({MAX_IGNORES} masks): remove some first")
        self._masks[full] = mask
        return True

    def remove(self, mask: str) -> bool:
        """Remove ``mask`` (in any case); False if it was not there."""
        try:
            full = self._full(mask)
        except ValueError:
            return False
        return self._masks.pop(full, None) is not None

    def __iter__(self) -> Iterator[str]:
        """The masks as given, in the order they were added."""
        return iter(list(self._masks.values()))

    def __len__(self) -> int:
        return len(self._masks)

    def __contains__(self, mask: object) -> bool:
        try:
            return isinstance(mask, str) and self._full(mask) in self._masks
        except ValueError:
            return False

    def __repr__(self) -> str:
        return f"Ignores({list(self)!r})"


@dataclass
class ClientConfig:
    """The client's settings: the file's, or the defaults when there is none."""

    #: the file read, or where it would be when missing; None: not tied to a file
    path: Path | None = None
    profiles: dict[str, Profile] = field(default_factory=dict)
    default_profile: str | None = None  #: ``[client] default_profile``
    ignores: Ignores = field(default_factory=Ignores)
    bell: bool = True  #: ``[notify] bell``
    desktop: bool = True  #: ``[notify] desktop``: OSC 777/9 desktop notifications

    def profile(self, name: str | None) -> Profile:
        """The profile ``name``; for None the default profile, else an empty one
        (``Profile("default")``, which changes nothing).

        Raises:
            ConfigError: there is no profile ``name``; the message lists those there are.
        """
        if name is None:
            name = self.default_profile
            if name is None:
                return self.profiles.get("default", Profile("default"))
        if name in self.profiles:
            return self.profiles[name]
        where = f" in {self.path}" if self.path is not None else ""
        if self.profiles:
            known = ", ".join(sorted(self.profiles))
            raise ConfigError(f"no profile {name!r}{where}; the profiles are: {known}")
        raise ConfigError(f"no profile {name!r}: there are no profiles{where}")

    def save_ignores(self) -> None:
        """Write the ignore list back to :attr:`path` as ``[client] ignore``, the rest of the
        file (comments, other keys, layout) as it is; the file is read again first, so edits
        made to it meanwhile are kept. A missing file is created, readable by its owner only.
        Does nothing when the config is not tied to a file (``path`` None).

        Raises:
            ConfigError: the file cannot be read, parsed or written.
        """
        if self.path is None:
            return
        import tomlkit
        from tomlkit.exceptions import TOMLKitError

        target = self.path.resolve()  # a symbolic link (dotfiles) stays one
        try:
            text = target.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {self.path}: {_reason(exc)}") from None
        try:
            document = tomlkit.parse(text)
            client = document.get("client")
            if client is None:
                client = tomlkit.table()
                document["client"] = client
            masks = tomlkit.array()
            masks.extend(list(self.ignores))
            if len(masks) > 3:
                masks.multiline(True)
            client["ignore"] = masks
            text = tomlkit.dumps(document)
        except (TOMLKitError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{self.path}: cannot update the ignore list: {exc}") from None
        try:
            _write_replacing(target, text)
        except OSError as exc:
            raise ConfigError(f"cannot write {self.path}: {_reason(exc)}") from None


def _write_replacing(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: to a new file beside it, then renamed
    over it. The new file is private; an existing one's mode is kept."""
    from chatcli.files import POSIX, open_private, private_dir

    private_dir(path.parent)
    try:
        mode: int | None = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = None
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open_private(temporary, "x", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if mode is not None and POSIX:
            os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _reason(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


# -- reading ---------------------------------------------------------------------------------


class _Bad(Exception):
    """A value of the wrong kind: the key (dotted) and why."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(why)
        self.key = key
        self.why = why


def load_client_config(path: Path | None = None) -> ClientConfig:
    """The settings in ``path`` (default: :func:`client_config_path`); the defaults when it
    does not exist (``path`` is kept, for :meth:`ClientConfig.save_ignores`).

    Raises:
        ConfigError: the file cannot be read, is not TOML, or has an unknown key or a value
            of the wrong kind: the message names the file, the line and the key.
    """
    if path is None:
        path = client_config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ClientConfig(path=path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {_reason(exc)}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return _config(path, raw)
    except _Bad as bad:
        line = _line_of(text, bad.key)
        at = f", line {line}" if line is not None else ""
        raise ConfigError(f"{path}{at}: {bad.key}: {bad.why}") from None


def _config(path: Path, raw: dict[str, Any]) -> ClientConfig:
    _known_keys("", raw, ("client", "notify", "profiles"))
    client = _table("client", raw.get("client", {}))
    _known_keys("client", client, ("default_profile", "ignore"))
    notify = _table("notify", raw.get("notify", {}))
    _known_keys("notify", notify, ("bell", "desktop"))
    profiles_raw = _table("profiles", raw.get("profiles", {}))

    profiles = {
        name: _profile(name, _table(f"profiles.{_key(name)}", table), path.parent)
        for name, table in profiles_raw.items()
    }
    default_profile = client.get("default_profile")
    if default_profile is not None:
        _check(isinstance(default_profile, str), "client.default_profile", "must be a string")
        if default_profile not in profiles:
            known = ", ".join(sorted(profiles)) or "none"
            raise _Bad(
                "client.default_profile",
                f"{default_profile!r} is not a profile here (the profiles: {known})",
            )
    masks = client.get("ignore", [])
    _check(_is_list_of(masks, str), "client.ignore", "must be a list of strings (masks)")
    try:
        ignores = Ignores(masks)
    except ValueError as exc:
        raise _Bad("client.ignore", str(exc)) from None
    return ClientConfig(
        path=path,
        profiles=profiles,
        default_profile=default_profile,
        ignores=ignores,
        bell=_bool("notify.bell", notify.get("bell", True)),
        desktop=_bool("notify.desktop", notify.get("desktop", True)),
    )


_PROFILE_KEYS = (
    "host",
    "port",
    "tls",
    "tls_fingerprint",
    "alias",
    "account_password_file",
    "rooms",
)


def _profile(name: str, table: dict[str, Any], base: Path) -> Profile:
    """The profile ``name`` from its table; a relative password file is from ``base``."""
    prefix = f"profiles.{_key(name)}"
    _known_keys(prefix, table, _PROFILE_KEYS)
    values: dict[str, Any] = {}
    if (host := table.get("host")) is not None:
        good = isinstance(host, str) and host.strip() == host and host and " " not in host
        _check(bool(good), f"{prefix}.host", "must be a host name or address (no spaces)")
        values["host"] = host
    if (port := table.get("port")) is not None:
        good = isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536
        _check(good, f"{prefix}.port", "must be a whole number from 1 to 65535")
        values["port"] = port
    if (tls := table.get("tls")) is not None:
        values["tls"] = _bool(f"{prefix}.tls", tls)
    if (pin := table.get("tls_fingerprint")) is not None:
        _check(isinstance(pin, str), f"{prefix}.tls_fingerprint", "must be a string")
        from chatcli.tls import normalise_fingerprint

        try:
            values["tls_fingerprint"] = normalise_fingerprint(pin)
        except ConfigError as exc:
            raise _Bad(f"{prefix}.tls_fingerprint", str(exc)) from None
    if (alias := table.get("alias")) is not None:
        good = isinstance(alias, str) and is_valid_nick(alias)
        _check(
            good,
            f"{prefix}.alias",
            f"{alias!r} is not an alias: a letter or one of _[]\\`^{{|}} first, then those, "
            f"digits and '-', {NICKLEN} characters at most",
        )
        values["alias"] = alias
    if (secret_file := table.get("account_password_file")) is not None:
        good = isinstance(secret_file, str) and bool(secret_file)
        _check(good, f"{prefix}.account_password_file", "must be a file name (a string)")
        values["account_password_file"] = base / Path(secret_file).expanduser()
    if (rooms := table.get("rooms")) is not None:
        key = f"{prefix}.rooms"
        _check(_is_list_of(rooms, str), key, "must be a list of room names (strings)")
        _check(len(rooms) <= MAX_ROOMS, key, f"at most {MAX_ROOMS} rooms")
        named: list[str] = []
        for room in rooms:
            full = room if room.startswith("#") else "#" + room
            _check(
                is_valid_channel(full),
                key,
                f"{room!r} is not a room name: '#' and up to {CHANNELLEN - 1} characters,"
                " no space, comma or colon",
            )
            if full.lower() not in (r.lower() for r in named):
                named.append(full)
        values["rooms"] = tuple(named)
    return Profile(name=name, **values)


def _table(key: str, value: object) -> dict[str, Any]:
    _check(isinstance(value, dict), key, f"must be a table ([{key}])")
    return value  # type: ignore[return-value]


def _known_keys(prefix: str, table: dict[str, Any], known: tuple[str, ...]) -> None:
    for key in table:
        if key not in known:
            dotted = f"{prefix}.{_key(key)}" if prefix else _key(key)
            raise _Bad(dotted, f"unknown key (the keys here: {', '.join(known)})")


def _bool(key: str, value: object) -> bool:
    _check(isinstance(value, bool), key, "must be true or false")
    return bool(value)


def _check(good: bool, key: str, why: str) -> None:
    if not good:
        raise _Bad(key, why)


def _is_list_of(value: object, kind: type) -> bool:
    return isinstance(value, list) and all(isinstance(item, kind) for item in value)


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key(name: str) -> str:
    """``name`` as a TOML key: bare if it can be, else quoted."""
    return name if _BARE_KEY.fullmatch(name) else '"' + name.replace('"', '\\"') + '"'


_HEADER = re.compile(r"\s*\[\s*([^\[\]]+?)\s*\]")
_ASSIGNMENT = re.compile(r"\s*(\"[^\"]*\"|[A-Za-z0-9_-]+)\s*=")


def _line_of(text: str, dotted: str) -> int | None:
    """The line (from 1) where ``text`` sets the key ``dotted`` (``profiles.home.port``),
    or starts its table; None if it cannot be told (a key in an inline table, say)."""
    wanted = [part.strip('"') for part in _split_dotted(dotted)]
    table: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if header := _HEADER.match(line):
            table = [part.strip().strip('"') for part in _split_dotted(header.group(1))]
            if table[: len(wanted)] == wanted:  # the table, or one inside it
                return number
            continue
        if key := _ASSIGNMENT.match(line):
            full = [*table, key.group(1).strip('"')]
            if wanted[: len(full)] == full:  # the key, or the inline table holding it
                return number
    return None


def _split_dotted(dotted: str) -> list[str]:
    """``a."b.c".d`` -> ``['a', '"b.c"', 'd']``."""
    return re.findall(r'"[^"]*"|[^.]+', dotted)


# -- the commented default -----------------------------------------------------------------


def default_config_text() -> str:
    """A commented ``client.toml`` explaining every key, which reads back as the defaults:
    what ``chat join --print-config`` prints."""
    return _DEFAULT_TEXT


_DEFAULT_TEXT = f"""\
# chatcli's client settings, read by `chat join`: client.toml in your config directory,
# or the file $CHAT_CLIENT_CONFIG names. Every key is optional. An option on the command
# line wins over the environment (CHAT_HOST, CHAT_PORT, CHAT_ALIAS, CHAT_TLS,
# CHAT_PROFILE), which wins over this file. A key chatcli does not know is an error.

[client]
# The profile `chat join` uses without --profile. Without one, no profile applies
# (except one named "default").
# default_profile = "home"

# Whose messages are not shown: "nick", or "nick!user@host" with * (any characters)
# and ? (any one character), compared ignoring case; at most {MAX_IGNORES}. When you
# change the list in the chat, chat join rewrites this key only, keeping the rest of
# this file (comments included) as it is.
ignore = []

[notify]
# Ring the terminal's bell when you are messaged directly or your alias is mentioned.
bell = true
# Then also ask the terminal for a desktop notification (OSC 777 and OSC 9: terminals
# that know neither ignore them).
desktop = true

# A server profile, used with `chat join --profile home` (or default_profile above).
# Have as many as you like, each a [profiles.NAME] table. Every key is optional: one
# left out keeps the option's default. Remove the leading "# " to use them.
#
# [profiles.home]
# host = "chat.example.org"        # --host
# port = 6697                      # --port
# tls = true                       # --tls
# # --tls-fingerprint: accept only this certificate (SHA-256; implies tls).
# tls_fingerprint = "AB:CD:EF:..."
# alias = "ada"                    # --alias
# # --account-password-file: a file holding your account's password (never put the
# # password itself here). ~ is your home; a relative name is from this file's folder.
# account_password_file = "ada.password"
# # Rooms joined once connected ('#' added if missing), beside the server's default one.
# rooms = ["#dev", "#random"]
"""
