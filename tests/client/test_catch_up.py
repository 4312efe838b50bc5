"""`chat join` after a dropped connection: it reconnects by itself, rejoins its rooms and
fetches exactly what it missed. Real server, real SQLite file, the client's own loop run
in-process with its input fed from a queue; the connection is cut from the server side."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import pytest
from rich.text import Text

from chatcli.client.app import Backoff, ChatView, chat_loop
from chatcli.client.session import ClientSession
from chatcli.errors import ExitStatus
from chatcli.passwords import hash_password
from tests.conftest import Client, RunningServer

HISTORY = "draft/chathistory batch server-time message-tags"


class Chat:
    """A `chat join` client whose typing comes from a queue and whose screen is a list."""

    def __init__(self, port: int, nick: str, room: str = "#dev") -> None:
        self.session = ClientSession("127.0.0.1", port, nick, timeout=5)
        burst = self.session.connect()
        self.view = ChatView(self.session, None)
        self.view.backoff = Backoff(first=0.3, cap=0.5, attempts=20)
        self.screen: list[Text] = []
        self.typed: queue.Queue[str | None] = queue.Queue()
        self.status: ExitStatus | None = None

        def run() -> None:
            self.status = chat_loop(
                self.session, self.view, room, burst, self.screen.append, self.typed.get
            )

        self.thread = threading.Thread(target=run, name=f"chat-{nick}")
        self.thread.start()

    def transcript(self, room: str = "#dev") -> list[str]:
        with self.view.lock:
            return list(self.view.timeline.log.get(room, []))

    def lines(self) -> list[str]:
        return [line.plain[6:] for line in list(self.screen)]  # without the "12:01 "

    def quit(self) -> ExitStatus | None:
        self.typed.put("/quit")
        self.thread.join(10)
        assert not self.thread.is_alive()
        return self.status


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def running(make_server, tmp_path) -> RunningServer:
    return make_server(db=str(tmp_path / "chat.db"), replay_lines=5, flood_rate=0)


@pytest.fixture
def talker(running):
    client = Client(running.port)
    client.register("talker", join=False)
    client.send("JOIN #dev")
    client.expect("366")
    yield client
    client.close()


def say(client: Client, *texts: str) -> None:
    for text in texts:
        client.send(f"PRIVMSG #dev :{text}")
    client.sync()


def truth(port: int) -> list[str]:
    """Every msgid of #dev, from the server's history."""
    reader = Client(port)
    try:
        reader.register("reader", HISTORY, join=False)
        reader.send("JOIN #dev")
        reader.expect("366")
        reader.send("CHATHISTORY LATEST #dev * 1000")
        reader.expect("BATCH")
        found = reader.collect("BATCH")[:-1]
        return [m.tags["msgid"] for m in found]
    finally:
        reader.close()


def cut(running: RunningServer, nick: str) -> None:
    with running.server.world.lock:
        conn = running.server.world.find_nick(nick)
    assert conn is not None
    conn.disconnect("cut off for the test")


def test_a_client_cut_off_while_others_talk_ends_with_the_same_transcript(running, talker):
    say(talker, "before 0", "before 1", "before 2")
    steady, roamer = Chat(running.port, "steady"), Chat(running.port, "roamer")
    try:
        wait_for(lambda: len(steady.transcript()) == len(roamer.transcript()) == 3)
        say(talker, "seen 0", "seen 1")
        wait_for(lambda: len(roamer.transcript()) == 5)
        cut(running, "roamer")
        # More than the 5 lines replayed on joining: a replay alone would leave a gap.
        say(talker, *(f"missed {i}" for i in range(12)))
        wait_for(lambda: any(line.endswith("reconnected") for line in roamer.lines()))
        say(talker, *(f"after {i}" for i in range(3)))
        everything = truth(running.port)
        assert len(everything) == 3 + 2 + 12 + 3
        wait_for(lambda: roamer.transcript() == everything)
        wait_for(lambda: steady.transcript() == everything)
        time.sleep(0.2)  # nothing more comes (no repeats)
        assert roamer.transcript() == steady.transcript() == everything
        shown = [line for line in roamer.lines() if line.startswith("#dev <talker>")]
        assert shown == [line for line in steady.lines() if line.startswith("#dev <talker>")]
        assert len(shown) == 20
        assert any("disconnected: cut off for the test" in line for line in roamer.lines())
        assert any("reconnecting in" in line for line in roamer.lines())
    finally:
        assert roamer.quit() == ExitStatus.OK
        assert steady.quit() == ExitStatus.OK


def test_backlog_on_join_is_rendered_with_its_time_and_no_batch_lines(running, talker):
    say(talker, *(f"old {i}" for i in range(8)))
    chat = Chat(running.port, "newcomer")
    try:
        wait_for(lambda: len(chat.transcript()) == 5)
        lines = chat.lines()
        assert [line for line in lines if "<talker>" in line] == [
            f"#dev <talker> old {i}" for i in range(3, 8)
        ]
        assert not any("BATCH" in line or "UTC]" in line for line in lines)
    finally:
        assert chat.quit() == ExitStatus.OK


def test_history_pages_back_from_the_oldest_message_shown(running, talker):
    say(talker, *(f"old {i}" for i in range(30)))
    everything = truth(running.port)
    chat = Chat(running.port, "reader2")
    try:
        wait_for(lambda: len(chat.transcript()) == 5)
        chat.typed.put("/history 10")
        wait_for(lambda: len(chat.transcript()) == 15)
        chat.typed.put("/history")
        wait_for(lambda: len(chat.transcript()) == 30)
        assert chat.transcript() == everything
        assert any(line.endswith("-- earlier in #dev:") for line in chat.lines())
        assert "#dev <talker> old 0" in chat.lines()
    finally:
        assert chat.quit() == ExitStatus.OK


def test_quitting_while_cut_off_does_not_reconnect(running, talker):
    chat = Chat(running.port, "leaver")
    chat.view.backoff = Backoff(first=5.0, cap=5.0, attempts=3)
    wait_for(lambda: chat.view.ready.is_set())
    cut(running, "leaver")
    wait_for(lambda: any("reconnecting in" in line for line in chat.lines()))
    started = time.monotonic()
    assert chat.quit() == ExitStatus.OK
    assert time.monotonic() - started < 2  # it did not wait for the next attempt
    talker.send("WHOIS leaver")
    assert talker.expect("401")  # no such nick: it did not come back


def test_a_keyed_room_is_rejoined_with_its_key(running, talker):
    talker.send("MODE #dev +k sesame")
    talker.expect("MODE")
    chat = Chat(running.port, "keyholder", room="#lobby")
    try:
        wait_for(lambda: chat.view.ready.is_set())
        chat.typed.put("/join #dev sesame")
        wait_for(lambda: "#dev" in chat.view.rooms)
        cut(running, "keyholder")
        wait_for(lambda: any(line.endswith("reconnected") for line in chat.lines()))
        talker.expect("JOIN", "#dev")  # before the cut
        rejoined = talker.expect("JOIN", "#dev")  # and after it, with the key
        assert rejoined.source.startswith("keyholder!")
    finally:
        assert chat.quit() == ExitStatus.OK


def test_killed_by_an_operator_it_says_so_and_does_not_reconnect(make_server):
    running = make_server(operators=(("admin", hash_password("s3cret")),))
    admin = Client(running.port)
    admin.register("admin")
    admin.send("OPER admin s3cret")
    admin.expect("381")
    chat = Chat(running.port, "victim", room="#lobby")
    chat.view.backoff = Backoff(first=0.1, cap=0.1, attempts=3)
    try:
        wait_for(lambda: chat.view.ready.is_set())
        admin.send("KILL victim :enough")
        wait_for(lambda: any("not reconnecting" in line for line in chat.lines()))
        assert "-- you were disconnected by server operator admin: enough" in chat.lines()
        time.sleep(0.5)  # past the first attempt it would have made
        assert not any("reconnect" in line for line in chat.lines() if "not" not in line)
        chat.typed.put(None)  # (chat join's prompt is ended for it)
        chat.thread.join(10)
        assert chat.status == ExitStatus.CONNECT
        admin.send("WHOIS victim")
        admin.expect("401")
    finally:
        admin.close()
