"""``chat join --room``: a name no server could take as one room is refused before
connecting, as a usage error (exit 2) like any bad option."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from chatcli.cli import main


def join(*args: str):
    # Port 1: nothing listens there, so a run that got as far as connecting would fail
    # with a connection error (exit 3), not a usage error.
    return CliRunner().invoke(main, ["join", "--port", "1", *args], catch_exceptions=False)


@pytest.mark.parametrize("room", ["bad room", "#bad room", "a,b", "#a:b", "", "#", "x" * 64])
def test_an_invalid_room_is_a_usage_error(room):
    result = join("--room", room)
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--room'" in result.output
    assert f"{room!r} is not a room name" in result.output


def test_a_valid_room_gets_as_far_as_connecting():
    result = join("--room", "dev")
    assert result.exit_code not in (0, 2), result.output


def test_a_room_without_its_hash_is_given_one(monkeypatch):
    joined: list[str | None] = []

    def run_join(session, room, **options):
        joined.append(room)
        return 0

    monkeypatch.setattr("chatcli.client.join.run_join", run_join)
    assert join("--room", "dev").exit_code == 0
    assert join("--room", "#ops").exit_code == 0
    assert join().exit_code == 0
    assert joined == ["#dev", "#ops", None]
