"""``chat serve --config FILE``: every ServerConfig field, in TOML, checked on load."""

from __future__ import annotations

import tomllib

import pytest
from click.testing import CliRunner

from chatcli.cli import main
from chatcli.config import ServerConfig
from chatcli.errors import ConfigError, ExitStatus
from chatcli.passwords import hash_password
from chatcli.settings import commented_default, load


def write(tmp_path, text: str):
    path = tmp_path / "chat.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_printed_default_is_valid_toml_and_loads_to_the_defaults(tmp_path):
    printed = CliRunner().invoke(main, ["serve", "--print-config"]).output
    assert printed == commented_default() + "\n"
    assert "# bytes queued to one client before it is dropped" in printed
    values = load(write(tmp_path, printed))
    assert ServerConfig(**values) == ServerConfig()
    assert set(tomllib.loads(printed)) <= {f for f in ServerConfig.__dataclass_fields__}


def test_values_of_every_kind(tmp_path):
    stored = hash_password("pw")
    path = write(
        tmp_path,
        f"""
port = 6667
room = "#class"
flood_rate = 5
motd = ["Welcome", "Be kind"]
password = "s3cret"
casemapping = "rfc1459"
[operators]
admin = "{stored}"
""",
    )
    config = ServerConfig(**load(path))
    assert (config.port, config.room, config.flood_rate) == (6667, "#class", 5.0)
    assert config.motd == ("Welcome", "Be kind") and config.password == "s3cret"
    assert config.operators == (("admin", stored),)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("prot = 1", "unknown key 'prot'"),
        ('port = "6667"', "port: must be a whole number"),
        ("port = 70000", "port must be between 0 and 65535"),
        ("flood_rate = true", "flood_rate: must be a number"),
        ('room = "lobby"', "room must be a valid room name"),
        ("motd = 'one line'", "motd: must be a list of lines"),
        ('[operators]\nadmin = "plain"', "operators: admin: not a password hash"),
        ("port = ", "not valid TOML"),
    ],
)
def test_a_bad_file_says_which_key_and_why(tmp_path, text, reason):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert str(caught.value).startswith(f"{path}: ") and reason in str(caught.value)


def test_chat_serve_stops_on_a_bad_file_with_one_line(tmp_path):
    path = write(tmp_path, "prot = 1")
    result = CliRunner().invoke(main, ["serve", "--config", str(path)])
    assert result.exit_code == ExitStatus.USAGE
    assert result.stderr == f"chat: {path}: unknown key 'prot'\n"


def test_an_empty_db_keeps_nothing(tmp_path):
    assert load(write(tmp_path, 'db = ""'))["db"] is None


def test_web_proxies_must_be_addresses_or_networks(tmp_path):
    path = tmp_path / "chat.toml"
    path.write_text('web_proxies = ["10.0.0.0/8", "::1"]\n')
    assert load(path)["web_proxies"] == ("10.0.0.0/8", "::1")
    path.write_text('web_proxies = ["not an address"]\n')
    with pytest.raises(ConfigError, match="web_proxies"):
        load(path)


@pytest.mark.parametrize("timeout", [0.0, -1.0])
def test_a_cluster_timeout_that_is_not_positive_is_refused(timeout):
    with pytest.raises(ConfigError, match="cluster_timeout must be positive"):
        ServerConfig(cluster_timeout=timeout).validate()
