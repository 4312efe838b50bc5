"""``chat serve --config FILE``: the server's settings in one TOML file.

Every key is a field of :class:`~chatcli.config.ServerConfig`, with the same name and
meaning; ``chat serve --print-config`` writes them all, commented, with their defaults (the
comments are those of ``ServerConfig`` itself, so the two cannot disagree). Options given on
the command line win over the file. An unknown key or a value of the wrong kind stops
start-up with the file, the key and the reason.

Two keys have a TOML shape of their own: ``motd`` is a list of lines, and ``operators`` a
table of ``name = "hash"`` (from ``chat hash-password``). An empty ``password`` or ``db``
means none (``db = ""`` keeps nothing, as ``--no-db`` does).
"""

from __future__ import annotations

import dataclasses
import inspect
import ipaddress
import json
import re
import tomllib
from pathlib import Path
from typing import Any

from chatcli.config import ServerConfig
from chatcli.dburl import is_url, normalised
from chatcli.errors import ConfigError
from chatcli.passwords import is_password_hash
from chatcli.protocol import CaseMapping

#: Fields the file does not set: derived, or for tests only.
HIDDEN = frozenset({"version"})
_DEFAULTS = ServerConfig()


def resolve(
    options: dict[str, tuple[Any, bool]], config_file: Path | None, data_dir: Path
) -> tuple[ServerConfig, bool]:
    """The settings ``chat serve`` runs with, and whether a certificate was made for them.

    Args:
        options: each setting the command line has an option for: its value there, and
            whether it was given (else it is the option's default).
        config_file: the ``--config`` file, if any.
        data_dir: where the database and a self-signed certificate go by default.

    What was given on the command line wins over the file, which wins over the options'
    defaults. No ``db`` anywhere: ``chat.db`` in ``data_dir``. TLS with neither
    certificate nor key: a self-signed pair in ``data_dir/tls``, made the first time.

    Raises:
        ConfigError: the file or a value is wrong.
    """
    values = load(config_file) if config_file is not None else {}
    for key, (value, given) in options.items():
        if given:
            values[key] = value
        else:
            values.setdefault(key, value)
    values.setdefault("db", str(data_dir / "chat.db"))
    if isinstance(values["db"], str) and is_url(values["db"]):
        values["db"] = normalised(values["db"])  # (the server makes a path of it)
    wants_tls = values.get("tls") or values.get("tls_port") is not None
    made = False
    if wants_tls and not values.get("tls_cert") and not values.get("tls_key"):
        from chatcli import tls

        names = [values.get("name") or ServerConfig.name, "localhost", "127.0.0.1", "::1"]
        cert, key, made = tls.ensure_self_signed(data_dir / "tls", names)
        values["tls_cert"], values["tls_key"] = str(cert), str(key)
    return ServerConfig(**values).validate(), made


def load(path: Path) -> dict[str, Any]:
    """The settings in ``path``, as ServerConfig keyword arguments.

    Raises:
        ConfigError: the file cannot be read or parsed, or a key or value is wrong.
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    fields = {f.name: f for f in dataclasses.fields(ServerConfig) if f.name not in HIDDEN}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            raise ConfigError(f"{path}: unknown key {key!r}")
        try:
            values[key] = _convert(key, value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: {key}: {exc}") from None
    try:
        ServerConfig(**values).validate()
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return values


def _convert(key: str, value: object) -> object:
    default = getattr(_DEFAULTS, key)
    if key == "motd":
        if not isinstance(value, list) or not all(isinstance(line, str) for line in value):
            raise TypeError("must be a list of lines (strings)")
        return tuple(value)
    if key == "web_origins":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise TypeError('must be a list of origins, like ["https://chat.example.org"]')
        return tuple(value)
    if key in ("web_proxies", "proxy_protocol"):
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise TypeError('must be a list of addresses or networks, like ["127.0.0.1"]')
        for item in value:
            ipaddress.ip_network(item, strict=False)  # (ValueError: not one)
        return tuple(value)
    if key == "operators":
        if not isinstance(value, dict):
            raise TypeError('must be a table of name = "hash" (from chat hash-password)')
        for name, stored in value.items():
            if not isinstance(stored, str) or not is_password_hash(stored):
                raise ValueError(f"{name}: not a password hash (see chat hash-password)")
        return tuple(value.items())
    if key == "casemapping":
        return CaseMapping(value)
    if key in ("tls_port", "web_port"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("must be a whole number (a port)")
        return value
    if default is None:  # optional text: password, db
        if not isinstance(value, str):
            raise TypeError("must be a string")
        return value or None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise TypeError("must be true or false")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("must be a whole number")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError("must be a number")
        return float(value)
    if isinstance(default, str) and not isinstance(value, str):
        raise TypeError("must be a string")
    return value


def commented_default() -> str:
    """A TOML file of every setting at its default, each with its documentation."""
    docs = _field_docs()
    lines = [
        "# chat serve --config FILE: the server's settings. Every key is optional; a key",
        "# left out keeps its default (shown). Options on the command line win over this.",
        "",
    ]
    for field in dataclasses.fields(ServerConfig):
        if field.name in HIDDEN:
            continue
        lines += [f"# {line}" for line in docs.get(field.name, [])]
        lines.append(_toml_line(field.name, getattr(_DEFAULTS, field.name)))
        lines.append("")
    return "\n".join(lines)


def _toml_line(key: str, value: object) -> str:
    if key == "operators":
        return '# [operators]\n# admin = "scrypt$..."   # from chat hash-password'
    if key == "tls_port":
        return f"# {key} = 6697"
    if key == "web_port":
        return f"# {key} = 8080"
    if value is None:
        return f'# {key} = ""'
    if key in ("motd", "web_origins", "web_proxies", "proxy_protocol"):
        return f"{key} = []"
    if isinstance(value, bool):
        return f"{key} = {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"{key} = {value!r}"
    return f"{key} = {json.dumps(str(value))}"  # a JSON string is a TOML basic string


def _field_docs() -> dict[str, list[str]]:
    """Each field's ``#:`` comments in ServerConfig's source: above it or after it."""
    docs: dict[str, list[str]] = {}
    pending: list[str] = []
    field_line = re.compile(r"^\s{4}(\w+): [^=]+=.*?(?:#:\s*(.*))?$")
    for line in inspect.getsource(ServerConfig).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        found = field_line.match(line)
        if found:
            docs[found.group(1)] = pending + ([found.group(2)] if found.group(2) else [])
        pending = []
    return docs
