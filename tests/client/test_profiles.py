"""The client config file (client.toml): server profiles, the ignore list, notification
switches; and ``chat join --profile``, where the command line and the environment win over
the file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from chatcli.cli import main
from chatcli.client.profiles import (
    MAX_IGNORES,
    ClientConfig,
    Ignores,
    Profile,
    client_config_path,
    default_config_text,
    load_client_config,
)
from chatcli.errors import ConfigError, ExitStatus
from tests.conftest import posix_only

PIN = "ab" * 32


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "client.toml"
    path.write_text(text, encoding="utf-8")
    return path


# -- reading ---------------------------------------------------------------------------------


def test_a_missing_file_gives_the_defaults_and_remembers_where_it_would_be(tmp_path):
    path = tmp_path / "nowhere" / "client.toml"
    config = load_client_config(path)
    assert config.path == path
    assert config.profiles == {} and config.default_profile is None
    assert list(config.ignores) == []
    assert config.bell is True and config.desktop is True
    assert config.profile(None) == Profile("default")


def test_the_path_is_client_toml_in_the_config_directory_unless_the_environment_names_one(
    monkeypatch, tmp_path
):
    monkeypatch.delenv("CHAT_CLIENT_CONFIG", raising=False)
    path = client_config_path()
    assert path.name == "client.toml" and path.parent.name == "chatcli"
    monkeypatch.setenv("CHAT_CLIENT_CONFIG", str(tmp_path / "mine.toml"))
    assert client_config_path() == tmp_path / "mine.toml"
    assert load_client_config().path == tmp_path / "mine.toml"


def test_the_commented_default_reads_back_as_the_defaults(tmp_path):
    text = default_config_text()
    config = load_client_config(write(tmp_path, text))
    assert config == ClientConfig(path=tmp_path / "client.toml", ignores=config.ignores)
    assert len(config.ignores) == 0
    # Every key is explained, the profile's too (commented out).
    for key in ("default_profile", "ignore", "bell", "desktop", "[profiles."):
        assert key in text
    for key in ("host", "port", "tls", "tls_fingerprint", "alias", "account_password_file"):
        assert f"# {key} = " in text
    assert "# rooms = " in text


def test_the_example_profile_of_the_default_is_valid_once_uncommented(tmp_path):
    lines = []
    for line in default_config_text().splitlines():
        if line.startswith("# ") and ("=" in line or line.startswith("# [profiles.")):
            line = line[2:]
        lines.append(line)
    text = "\n".join(lines).replace('"AB:CD:EF:..."', f'"{PIN}"')
    config = load_client_config(write(tmp_path, text))
    assert config.default_profile == "home"
    assert config.profile(None).host == "chat.example.org"


def test_a_profile_is_read_with_every_key(tmp_path):
    path = write(
        tmp_path,
        f"""
        [client]
        default_profile = "work"
        ignore = ["spammer", "*!*@bad.example"]

        [notify]
        bell = false
        desktop = false

        [profiles.work]
        host = "chat.example.org"
        port = 6697
        tls = true
        tls_fingerprint = "{PIN}"
        alias = "ada"
        account_password_file = "secrets/ada.password"
        rooms = ["dev", "#random", "#Dev"]

        [profiles.home]
        host = "::1"
        account_password_file = "~/ada.password"
        """,
    )
    config = load_client_config(path)
    assert config.default_profile == "work"
    assert list(config.ignores) == ["spammer", "*!*@bad.example"]
    assert config.bell is False and config.desktop is False
    assert config.profile(None) == config.profile("work")
    assert config.profile("work") == Profile(
        name="work",
        host="chat.example.org",
        port=6697,
        tls=True,
        tls_fingerprint=":".join(["AB"] * 32),
        alias="ada",
        account_password_file=tmp_path / "secrets" / "ada.password",
        rooms=("#dev", "#random"),  # '#' added; the same room twice (any case) once
    )
    home = config.profile("home")
    assert home.account_password_file == Path("~/ada.password").expanduser()
    assert (home.port, home.tls, home.alias, home.rooms) == (None, None, None, ())


def test_bad_toml_names_the_file_and_the_line(tmp_path):
    path = write(tmp_path, "[client]\nignore = [\n\n[notify]\nbell = yes\n")
    with pytest.raises(ConfigError, match=r"not valid TOML.*line \d") as caught:
        load_client_config(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    "text, line, key",
    [
        ("[client]\ncolour = true\n", 2, "client.colour"),
        ("[notify]\nbel = true\n", 2, "notify.bel"),
        ("\n[profile.home]\nhost = 'x'\n", 2, "profile"),
        ("[profiles.home]\nhost = 'x'\nnick = 'ada'\n", 3, "profiles.home.nick"),
        ("[profiles.home]\npassword = 'hunter2'\n", 2, "profiles.home.password"),
    ],
)
def test_an_unknown_key_is_refused_naming_it_and_its_line(tmp_path, text, line, key):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_client_config(path)
    assert str(caught.value).startswith(f"{path}, line {line}: {key}: unknown key")


@pytest.mark.parametrize(
    "text, line, key, why",
    [
        ("[notify]\nbell = 'yes'\n", 2, "notify.bell", "true or false"),
        ("[client]\nignore = 'spammer'\n", 2, "client.ignore", "list of strings"),
        ("[client]\nignore = ['two words']\n", 2, "client.ignore", "no spaces"),
        ("[client]\ndefault_profile = 'nope'\n", 2, "client.default_profile", "not a profile"),
        ("[profiles.p]\nport = '6667'\n", 2, "profiles.p.port", "whole number"),
        ("[profiles.p]\nport = 70000\n", 2, "profiles.p.port", "1 to 65535"),
        ("[profiles.p]\n\ntls = 1\n", 3, "profiles.p.tls", "true or false"),
        ("[profiles.p]\nhost = 'a b'\n", 2, "profiles.p.host", "no spaces"),
        ("[profiles.p]\nalias = '9lives'\n", 2, "profiles.p.alias", "not an alias"),
        ("[profiles.p]\ntls_fingerprint = 'AB:CD'\n", 2, "profiles.p.tls_fingerprint", "SHA-256"),
        ("[profiles.p]\nrooms = '#dev'\n", 2, "profiles.p.rooms", "list of room names"),
        ("[profiles.p]\nrooms = ['bad room']\n", 2, "profiles.p.rooms", "not a room name"),
        ("[profiles.p]\naccount_password_file = 3\n", 2, "profiles.p.account_password_file", ""),
        ("[profiles]\np = 3\n", 2, "profiles.p", "must be a table"),
    ],
)
def test_a_value_of_the_wrong_kind_is_refused_naming_its_key_and_line(
    tmp_path, text, line, key, why
):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_client_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, line {line}: {key}: "), message
    assert why in message


def test_an_unknown_profile_is_refused_listing_the_known_ones(tmp_path):
    config = load_client_config(write(tmp_path, "[profiles.home]\n[profiles.work]\n"))
    with pytest.raises(ConfigError, match=r"no profile 'play'.*the profiles are: home, work"):
        config.profile("play")
    empty = load_client_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="no profile 'home': there are no profiles"):
        empty.profile("home")


def test_without_a_default_profile_the_one_named_default_applies(tmp_path):
    config = load_client_config(write(tmp_path, "[profiles.default]\nalias = 'ada'\n"))
    assert config.profile(None).alias == "ada"


# -- the ignore list -------------------------------------------------------------------------


def test_a_bare_nick_is_ignored_from_any_host():
    ignores = Ignores(["spammer"])
    assert ignores.matches("spammer!spam@anywhere.example")
    assert ignores.matches("spammer!~x@10.0.0.1")
    assert ignores.matches("spammer")  # the host not known
    assert not ignores.matches("spammer2!spam@anywhere.example")
    assert not ignores.matches("alice!spammer@host")


def test_masks_with_wildcards_match_nick_user_and_host():
    ignores = Ignores(["*!*@bad.example", "bot?!*@*"])
    assert ignores.matches("anyone!u@bad.example")
    assert not ignores.matches("anyone!u@good.example")
    assert not ignores.matches("anyone")  # a host mask cannot match an unknown host
    assert ignores.matches("bot1!b@x") and ignores.matches("bot1")
    assert not ignores.matches("bot12!b@x")


def test_masks_match_ignoring_case():
    ignores = Ignores(["Spammer", "*!*@BAD.example"])
    assert ignores.matches("SPAMMER!u@h")
    assert ignores.matches("x!y@bad.EXAMPLE")
    assert "spammer" in ignores


def test_add_and_remove_say_whether_they_changed_the_list():
    ignores = Ignores()
    assert ignores.add("spammer") is True
    assert ignores.add("SPAMMER") is False  # the same mask
    assert ignores.add("spammer!*@*") is False  # what a bare nick means
    assert ignores.add("troll!*@*.example") is True
    assert list(ignores) == ["spammer", "troll!*@*.example"] and len(ignores) == 2
    assert ignores.remove("Spammer") is True
    assert ignores.remove("spammer") is False
    assert ignores.remove("not a mask") is False
    assert list(ignores) == ["troll!*@*.example"]
    assert not ignores.matches("spammer!u@h")


@pytest.mark.parametrize(
    "mask", ["", "two words", "a,b", "nick!user", "nick@host", "a!b@c@d", "a!!b@c", "x\x07"]
)
def test_an_invalid_mask_is_refused_with_a_reason(mask):
    with pytest.raises(ValueError, match=r"mask"):
        Ignores().add(mask)


def test_the_ignore_list_is_bounded():
    ignores = Ignores(f"nick{i}" for i in range(MAX_IGNORES))
    with pytest.raises(ValueError, match=f"full \\({MAX_IGNORES} masks\\)"):
        ignores.add("one-more")
    assert ignores.add("nick0") is False  # already there: not an error
    assert len(ignores) == MAX_IGNORES


def test_a_file_with_too_many_masks_is_refused(tmp_path):
    masks = ", ".join(f'"n{i}"' for i in range(MAX_IGNORES + 1))
    with pytest.raises(ConfigError, match=r"client\.ignore: the ignore list is full"):
        load_client_config(write(tmp_path, f"[client]\nignore = [{masks}]\n"))


# -- writing the ignore list back ------------------------------------------------------------


def test_saving_the_ignore_list_keeps_the_users_comments_and_other_keys(tmp_path):
    original = """\
# my chat settings
[client]
default_profile = "home"   # the usual one
ignore = ["spammer"]

[notify]
bell = false  # quiet, please

[profiles.home]
host = "chat.example.org"
"""
    path = write(tmp_path, original)
    config = load_client_config(path)
    config.ignores.add("*!*@bad.example")
    config.ignores.remove("spammer")
    config.save_ignores()
    text = path.read_text(encoding="utf-8")
    assert text == original.replace('["spammer"]', '["*!*@bad.example"]')
    again = load_client_config(path)
    assert list(again.ignores) == ["*!*@bad.example"]
    assert again.bell is False and again.profile(None).host == "chat.example.org"


def test_saving_keeps_what_was_changed_in_the_file_since_it_was_read(tmp_path):
    path = write(tmp_path, "[client]\nignore = []\n")
    config = load_client_config(path)
    path.write_text("[client]\nignore = []\n\n[notify]\nbell = false\n", encoding="utf-8")
    config.ignores.add("troll")
    config.save_ignores()
    again = load_client_config(path)
    assert list(again.ignores) == ["troll"] and again.bell is False


def test_saving_adds_the_client_table_when_the_file_has_none(tmp_path):
    path = write(tmp_path, "# only notifications\n[notify]\ndesktop = false\n")
    config = load_client_config(path)
    config.ignores.add("troll")
    config.save_ignores()
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# only notifications\n[notify]\ndesktop = false\n")
    assert list(load_client_config(path).ignores) == ["troll"]


@posix_only
def test_saving_creates_a_missing_file_for_its_owner_only(tmp_path, usual_umask):
    path = tmp_path / "config" / "chatcli" / "client.toml"
    config = load_client_config(path)
    config.ignores.add("spammer")
    config.save_ignores()
    assert tomllib.loads(path.read_text(encoding="utf-8")) == {"client": {"ignore": ["spammer"]}}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert list(load_client_config(path).ignores) == ["spammer"]
    assert [p.name for p in path.parent.iterdir()] == ["client.toml"]  # no temporary left


@posix_only
def test_saving_keeps_an_existing_files_mode_and_a_symbolic_link(tmp_path):
    real = write(tmp_path, "[client]\n")
    os.chmod(real, 0o640)
    link = tmp_path / "link.toml"
    link.symlink_to(real)
    config = load_client_config(link)
    config.ignores.add("troll")
    config.save_ignores()
    assert link.is_symlink()
    assert list(load_client_config(real).ignores) == ["troll"]
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o640


def test_a_file_that_cannot_be_written_is_a_config_error(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("", encoding="utf-8")
    config = ClientConfig(path=blocker / "client.toml")
    config.ignores.add("troll")
    with pytest.raises(ConfigError, match=f"cannot (read|write) {blocker}"):
        config.save_ignores()


def test_an_ignore_list_not_tied_to_a_file_is_not_saved():
    config = ClientConfig()
    config.ignores.add("troll")
    config.save_ignores()  # nothing to write, and no error


# -- chat join -------------------------------------------------------------------------------


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    """Where CHAT_CLIENT_CONFIG points, with the other CHAT_ variables unset."""
    for name in ("CHAT_HOST", "CHAT_PORT", "CHAT_ALIAS", "CHAT_TLS", "CHAT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "client.toml"
    monkeypatch.setenv("CHAT_CLIENT_CONFIG", str(path))
    return path


def chat(*args: str, input: str | None = None, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), input=input, env=env, catch_exceptions=False)


def test_join_with_a_profile_connects_where_it_says_as_the_alias_it_says(
    config_file, server, connect
):
    watcher = connect("watcher")
    watcher.send("JOIN #dev")
    watcher.expect("366", "watcher", "#dev")
    config_file.write_text(
        f'[profiles.p]\nhost = "127.0.0.1"\nport = {server.port}\nalias = "ada"\n'
        'rooms = ["#dev"]\n',
        encoding="utf-8",
    )
    result = chat("join", "--profile", "p", input="hello\n")
    assert result.exit_code == 0, result.output
    said = watcher.expect("PRIVMSG")
    # In the server's default room, or in the profile's room (which room the client then
    # talks in is the client's business, not the config file's).
    assert said.source.startswith("ada!") and said.params[1] == "hello"
    assert said.params[0] in ("#lobby", "#dev")


def test_join_uses_the_default_profile_without_profile_option(config_file, server, connect):
    watcher = connect("watcher")
    config_file.write_text(
        f'[client]\ndefault_profile = "p"\n[profiles.p]\nport = {server.port}\nalias = "ada"\n',
        encoding="utf-8",
    )
    assert chat("join", input="hi\n").exit_code == 0
    assert watcher.expect("PRIVMSG").source.startswith("ada!")


def test_the_command_line_and_the_environment_win_over_the_profile(config_file, server, connect):
    watcher = connect("watcher")
    config_file.write_text(
        '[profiles.p]\nport = 1\nalias = "ada"\n',  # nothing listens on port 1
        encoding="utf-8",
    )
    result = chat(
        "join", "--profile", "p", "--port", str(server.port), input="hi\n", env={"CHAT_ALIAS": "bo"}
    )
    assert result.exit_code == 0, result.output
    assert watcher.expect("PRIVMSG").source.startswith("bo!")
    result = chat("join", "--profile", "p", "--alias", "cy", env={"CHAT_PORT": str(server.port)})
    assert result.exit_code == 0, result.output
    assert watcher.expect("JOIN").source.startswith("cy!")


def test_the_profile_can_come_from_the_environment(config_file, server, connect):
    watcher = connect("watcher")
    config_file.write_text(f'[profiles.p]\nport = {server.port}\nalias = "dee"\n')
    assert chat("join", input="hi\n", env={"CHAT_PROFILE": "p"}).exit_code == 0
    assert watcher.expect("PRIVMSG").source.startswith("dee!")


def test_join_hands_the_profiles_rooms_the_config_and_plain_to_the_client(config_file, monkeypatch):
    config_file.write_text(
        f'[profiles.p]\nrooms = ["dev", "#ops"]\ntls_fingerprint = "{PIN}"\n'
        '[client]\nignore = ["spammer"]\n',
        encoding="utf-8",
    )
    calls = []

    def run_join(session, room, **options):
        calls.append((session, room, options))
        return ExitStatus.OK

    monkeypatch.setattr("chatcli.client.join.run_join", run_join)
    assert chat("join", "--profile", "p", "--plain", "--room", "x").exit_code == 0
    session, room, options = calls[0]
    assert room == "#x" and options["plain"] is True and options["rooms"] == ("#dev", "#ops")
    assert list(options["config"].ignores) == ["spammer"]
    assert session.tls is not None and session.tls.fingerprint == ":".join(["AB"] * 32)
    assert chat("join").exit_code == 0  # no profile: nothing from one, line mode as usual
    session, room, options = calls[1]
    assert room is None and options["plain"] is False and options["rooms"] == ()
    assert session.tls is None


def test_join_refuses_an_unknown_profile_before_connecting(config_file):
    config_file.write_text("[profiles.home]\n", encoding="utf-8")
    result = chat("join", "--profile", "work")
    assert result.exit_code == ExitStatus.USAGE
    assert result.stderr == f"chat: no profile 'work' in {config_file}; the profiles are: home\n"


def test_join_refuses_a_bad_config_file_before_connecting(config_file):
    config_file.write_text("[profiles.home]\nport = 'x'\n", encoding="utf-8")
    result = chat("join")
    assert result.exit_code == ExitStatus.USAGE
    assert result.stderr.startswith(f"chat: {config_file}, line 2: profiles.home.port: ")


def test_print_config_prints_a_file_that_reads_back_and_says_where_it_goes(config_file):
    config_file.write_text("this is not TOML", encoding="utf-8")  # not read, not in the way
    result = chat("join", "--print-config", "--port", "1")
    assert result.exit_code == 0
    assert result.stdout == default_config_text()
    tomllib.loads(result.stdout)
    assert str(config_file) in result.stderr


def test_the_command_line_does_not_load_the_config_machinery_until_chat_join_runs():
    """chat send's start-up time is mostly imports: it must not pay for TOML."""
    code = (
        "import sys, chatcli.cli; "
        "print(sorted({'tomllib', 'tomlkit', 'chatcli.client.profiles'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
