"""The browser client's IRCv3 features, in a real browser (headless Chromium, the same
fixtures as test_browser_client.py) against a real server, beside raw IRC clients over TCP:
messages of several lines (draft/multiline), deleting (draft/message-redaction), read
markers shared by an account's devices (draft/read-marker), replies and reactions
(+draft/reply, +draft/react), and display names, colours and avatars (draft/metadata-2).

Each test also checks that the page logged no script error and nothing its
Content-Security-Policy refused. Screenshots are left in the directory named by
CHATCLI_SCREENSHOTS, or in the test's own temporary directory."""

from __future__ import annotations

import base64
import datetime
import http.server
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Client, RunningServer, register_account
from tests.web import test_browser_client as base
from tests.web.test_browser_client import CHROMEDRIVER, CHROMIUM, INJECTION, Page, tcp_user

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
        reason="Chromium and its driver are not installed (apt-get install chromium "
        "chromium-driver)",
    ),
]
# The browser and the page, as test_browser_client.py makes them (one browser per module).
browser = base.browser
page = base.page
MODERN = "message-tags server-time echo-message batch draft/message-redaction"


def expect_from(client: Client, command: str, nick: str):
    """The next ``command`` that ``nick`` sent (others' are passed over)."""
    while True:
        msg = client.expect(command)
        if (msg.source or "").split("!")[0] == nick:
            return msg


def shots(tmp_path: Path) -> Path:
    return Path(os.environ.get("CHATCLI_SCREENSHOTS", tmp_path))


def offered(running: RunningServer) -> dict[str, str]:
    """The capabilities the server offers, with their values."""
    client = Client(running.port)
    try:
        client.send("CAP LS 302")
        caps: dict[str, str] = {}
        while True:
            msg = client.expect("CAP")
            for item in msg.params[-1].split():
                name, _, value = item.partition("=")
                caps[name] = value
            if msg.params[2] != "*":
                return caps
    finally:
        client.close()


def need(running: RunningServer, cap: str) -> None:
    """The server offers ``cap``: the page's use of it is what the test is about."""
    assert cap in offered(running), f"the server does not offer {cap}"


def lines(page: Page) -> list:
    return page.css("#log .line[data-msgid]")


def line_of(page: Page, text: str):
    """The log's line (its <li>) whose text is ``text``."""
    return page.until(
        lambda: next(
            (li for li in lines(page) if li.find_element(By.CSS_SELECTOR, ".text").text == text),
            None,
        ),
        f"the line {text!r}",
    )


def menu_action(page: Page, text: str, action: str) -> None:
    """Open a message's menu from the keyboard (its button focused, as Tab reaches it, then
    Enter), move to ``action`` with the arrow keys, and choose it with Enter."""
    item = line_of(page, text)
    button = item.find_element(By.CSS_SELECTOR, "button.more")
    page.driver.execute_script("arguments[0].focus()", button)
    assert button.is_displayed()  # (shown while the line holds the focus)
    button.send_keys(Keys.ENTER)
    page.until(lambda: button.get_attribute("aria-expanded") == "true", "the menu open")
    entries = page.css(".menu [role=menuitem]")
    assert page.driver.switch_to.active_element == entries[0]  # the focus moved into it
    for _ in range(len(entries)):
        if action in page.driver.switch_to.active_element.text:
            break
        page.driver.switch_to.active_element.send_keys(Keys.ARROW_DOWN)
    assert action in page.driver.switch_to.active_element.text
    page.driver.switch_to.active_element.send_keys(Keys.ENTER)


def type_lines(page: Page, *texts: str) -> None:
    """Type lines into the message box with Shift+Enter between them, then Enter."""
    field = page.driver.find_element(By.ID, "input")
    for i, text in enumerate(texts):
        if i:
            field.send_keys(Keys.SHIFT, Keys.ENTER, Keys.SHIFT)
        field.send_keys(text)
    field.send_keys(Keys.ENTER)


def paste(page: Page, text: str) -> None:
    """Put ``text`` in the message box as a paste would, and send it."""
    field = page.driver.find_element(By.ID, "input")
    page.driver.execute_script(
        "arguments[0].value = arguments[1];"
        "arguments[0].dispatchEvent(new Event('input', {bubbles: true}))",
        field,
        text,
    )
    page.driver.find_element(By.CSS_SELECTOR, "#send button").click()


def sasl_user(
    running: RunningServer,
    clients: list[Client],
    nick: str,
    account: str,
    password: str,
    caps: str = "",
) -> Client:
    """A TCP client signed in to ``account`` over SASL PLAIN, as ``nick``, in the lobby."""
    client = Client(running.port)
    clients.append(client)
    client.send(f"CAP REQ :sasl chatcli.local/autojoin {caps}".strip())
    client.send(f"NICK {nick}")
    client.send(f"USER {nick} 0 * :Real {nick}")
    client.expect("CAP", None, "ACK")
    client.send("AUTHENTICATE PLAIN")
    client.expect("AUTHENTICATE")
    token = base64.b64encode(f"{account}\0{account}\0{password}".encode()).decode()
    client.send(f"AUTHENTICATE {token}")
    client.expect("903")
    client.send("CAP END")
    client.collect("366")
    client.nick = nick
    return client


# -- deleting ---------------------------------------------------------------------------------


def test_messages_are_deleted_from_their_menu_and_with_slash_delete(
    make_server, page, clients, tmp_path
):
    running = make_server(web_port=0, db=str(tmp_path / "chat.db"))
    peer = tcp_user(running, clients, "peer", MODERN)
    page.open(running)
    page.sign_in("author")
    peer.expect("JOIN")

    # Our own message, deleted from its menu: the server is asked, and everyone sees it go.
    page.type("a regrettable line")
    said = peer.expect("PRIVMSG")
    line_of(page, "a regrettable line")
    # (Tab from the log reaches the message's menu button, which says what it is for.)
    page.driver.execute_script("document.getElementById('log').focus()")
    page.driver.switch_to.active_element.send_keys(Keys.TAB)
    reached = page.driver.switch_to.active_element
    assert reached.get_attribute("class") == "more"
    assert reached.get_attribute("aria-label") == "Actions for the message from author"
    menu_action(page, "a regrettable line", "Delete")
    deleted = peer.expect("REDACT")
    assert deleted.params == ("#lobby", said.tags["msgid"])
    page.until(lambda: "message deleted" in page.texts(), "the line shown as deleted")
    assert "a regrettable line" not in page.texts()
    gone = page.css("#log .line.redacted")
    assert len(gone) == 1 and not gone[0].find_elements(By.CSS_SELECTOR, "button.more")

    # /delete takes back our last message here.
    page.type("first")
    page.type("second")
    second = [peer.expect("PRIVMSG"), peer.expect("PRIVMSG")][1]
    line_of(page, "second")
    page.type("/delete")
    assert peer.expect("REDACT").params == ("#lobby", second.tags["msgid"])
    page.until(lambda: page.texts().count("message deleted") == 2, "second deleted")
    assert "first" in page.texts()

    # Someone else deletes a line the page shows: it goes as it comes.
    peer.send("PRIVMSG #lobby :oops, wrong room")
    mine = peer.expect("PRIVMSG")
    line_of(page, "oops, wrong room")
    peer.send(f"REDACT #lobby {mine.tags['msgid']}")
    page.until(lambda: "oops, wrong room" not in page.texts(), "the peer's line deleted")
    assert page.texts().count("message deleted") == 3

    # Someone else's message has no Delete (we do not run the room), and a refusal is told.
    peer.send("PRIVMSG #lobby :not yours to delete")
    theirs = peer.expect("PRIVMSG")
    item = line_of(page, "not yours to delete")
    menu = item.find_element(By.CSS_SELECTOR, "button.more")
    page.driver.execute_script("arguments[0].focus()", menu)
    menu.send_keys(Keys.ENTER)
    entries = [e.text for e in page.until(lambda: page.css(".menu [role=menuitem]"), "menu")]
    assert entries == ["↩ Reply", "☺ React"]
    page.driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    page.until(lambda: not page.css(".menu"), "the menu closed")
    assert page.driver.switch_to.active_element == menu  # (the focus back on its button)
    page.type(f"/quote REDACT #lobby {theirs.tags['msgid']}")
    page.until(
        lambda: any(t.startswith("The message could not be deleted: ") for t in page.texts()),
        "the refusal told",
    )
    page.driver.save_screenshot(str(shots(tmp_path) / "deleted.png"))
    assert page.errors() == []


# -- multiline ---------------------------------------------------------------------------------


def test_without_multiline_each_line_of_a_paste_is_a_message_of_its_own(
    make_server, page, clients, tmp_path
):
    running = make_server(web_port=0, db=str(tmp_path / "chat.db"))
    peer = tcp_user(running, clients, "peer", MODERN)
    page.open(running)
    page.sign_in("paster")
    peer.expect("JOIN")
    if "draft/multiline" in offered(running):  # (given up, as a client may)
        page.type("/quote CAP REQ :-draft/multiline")
        page.type("/whois peer")  # (its answer comes after the ACK)
        page.until(lambda: any(t.startswith("peer is ") for t in page.texts()), "the answer")
    type_lines(page, "one", "two")
    paste(page, "three\n\nfour\n")
    got = [peer.expect("PRIVMSG").params for _ in range(4)]
    assert got == [("#lobby", t) for t in ("one", "two", "three", "four")]
    page.wait_line("four")
    # A paste never runs a command; a line typed alone still does.
    paste(page, "/nick nope\nsecond line")
    assert peer.expect("PRIVMSG").params == ("#lobby", "/nick nope")
    assert page.errors() == []


def test_lines_typed_or_pasted_together_go_as_one_multiline_message(
    make_server, page, clients, tmp_path
):
    running = make_server(web_port=0, db=str(tmp_path / "chat.db"))
    need(running, "draft/multiline")
    peer = tcp_user(running, clients, "peer", MODERN + " draft/multiline")
    page.open(running)
    page.sign_in("poet")
    peer.expect("JOIN")

    # Shift+Enter: a new line in the message box, which grows with them; Enter sends it all
    # as one message of two lines, one batch on the wire.
    field = page.driver.find_element(By.ID, "input")
    field.send_keys("roses are red", Keys.SHIFT, Keys.ENTER, Keys.SHIFT, "violets are blue")
    assert field.get_attribute("value") == "roses are red\nviolets are blue"
    assert field.get_attribute("rows") == "2"
    page.driver.save_screenshot(str(shots(tmp_path) / "composing.png"))
    field.send_keys(Keys.ENTER)
    opened = peer.expect("BATCH")
    assert opened.params[1:] == ("draft/multiline", "#lobby")
    first, second = peer.expect("PRIVMSG"), peer.expect("PRIVMSG")
    assert (first.params[1], second.params[1]) == ("roses are red", "violets are blue")
    assert peer.expect("BATCH").params == (f"-{opened.params[0][1:]}",)
    page.wait_line("roses are red\nviolets are blue")
    assert page.texts().count("roses are red\nviolets are blue") == 1

    # Received: shown as one message, with its lines (a long line's pieces joined again).
    long = "word " * 150
    peer.send("BATCH +m draft/multiline #lobby")
    peer.send("@batch=m PRIVMSG #lobby :first line")
    peer.send(f"@batch=m PRIVMSG #lobby :{long[:400]}")
    peer.send(f"@batch=m;draft/multiline-concat PRIVMSG #lobby :{long[400:]}")
    peer.send("BATCH -m")
    page.wait_line(f"first line\n{long}")
    page.driver.save_screenshot(str(shots(tmp_path) / "multiline.png"))

    # Too much for one message: sent as several, each within the limits, and told.
    limits = dict(
        item.split("=") for item in offered(running)["draft/multiline"].split(",") if "=" in item
    )
    most = int(limits.get("max-lines", "0")) or 100
    paste(page, "\n".join(f"verse {i}" for i in range(most + 3)))
    page.until(
        lambda: any(t.startswith("That was too long for one message") for t in page.texts()),
        "the note",
    )
    page.wait_line("\n".join(f"verse {i}" for i in range(most, most + 3)))

    # From history too: a page opened later shows the message whole (and the topic's
    # changes where they were, the room's topic the last of them).
    peer.send("TOPIC #lobby :the old topic")
    peer.send("TOPIC #lobby :the new topic")
    peer.sync()
    page.driver.get("about:blank")
    page.open(running)
    page.sign_in("reader")
    page.wait_line("roses are red\nviolets are blue")
    page.wait_line("peer set the topic: the new topic")
    assert page.texts()[-2:] == [
        "peer set the topic: the old topic",
        "peer set the topic: the new topic",
    ]
    topic = page.driver.find_element(By.ID, "room-topic")
    assert topic.text == "the new topic"
    assert page.errors() == []


# -- replies and reactions ---------------------------------------------------------------------


def test_replies_quote_what_they_answer_and_reactions_are_counted_and_toggled(
    make_server, page, clients, tmp_path
):
    running = make_server(web_port=0, db=str(tmp_path / "chat.db"))
    peer = tcp_user(running, clients, "peer", MODERN)
    other = tcp_user(running, clients, "other", MODERN)
    page.open(running)
    page.sign_in("talker")
    peer.expect("JOIN")
    other.expect("JOIN")

    peer.send("PRIVMSG #lobby :lunch at noon?")
    question = peer.expect("PRIVMSG")
    other.expect("PRIVMSG")
    line_of(page, "lunch at noon?")

    # Reply from the message's menu: the reply carries +draft/reply, and shows the quote.
    menu_action(page, "lunch at noon?", "Reply")
    bar = page.driver.find_element(By.ID, "reply-bar")
    page.until(bar.is_displayed, "the reply bar")
    assert "Replying to peer: lunch at noon?" in bar.text
    assert page.driver.switch_to.active_element.get_attribute("id") == "input"
    page.type("yes, see you there")
    answer = peer.expect("PRIVMSG")
    assert answer.params == ("#lobby", "yes, see you there")
    assert answer.tags["+draft/reply"] == question.tags["msgid"]
    assert not bar.is_displayed()
    reply_line = line_of(page, "yes, see you there")
    quote = reply_line.find_element(By.CSS_SELECTOR, ".quote")
    assert quote.text == "↪ peer: lunch at noon?"

    # Someone else's reply to a line shown: the quote goes to it.
    for i in range(40):  # (enough lines to scroll)
        peer.send(f"PRIVMSG #lobby :filler {i}")
    peer.send(f"@+draft/reply={answer.tags['msgid']} PRIVMSG #lobby :{INJECTION}")
    page.wait_line(INJECTION)
    quote = line_of(page, INJECTION).find_element(By.CSS_SELECTOR, ".quote")
    assert quote.text == "↪ talker: yes, see you there"
    quote.click()
    target = line_of(page, "yes, see you there")
    page.until(lambda: page.driver.switch_to.active_element == target, "the original focused")
    assert page.driver.execute_script(
        "const r = arguments[0].getBoundingClientRect(),"
        " log = document.getElementById('log').getBoundingClientRect();"
        "return r.top >= log.top && r.bottom <= log.bottom",
        target,
    )

    # Reactions: counted under the message, live; ours toggles with a press.
    msgid = question.tags["msgid"]
    peer.send(f"@+draft/react=👍;+draft/reply={msgid} TAGMSG #lobby")
    other.send(f"@+draft/react=👍;+draft/reply={msgid} TAGMSG #lobby")
    other.send(f"@+draft/react=🎉;+draft/reply={msgid} TAGMSG #lobby")

    def reactions() -> list[tuple[str, str]]:
        found = line_of(page, "lunch at noon?").find_elements(By.CSS_SELECTOR, ".reaction")
        return [(b.text, b.get_attribute("aria-pressed")) for b in found]

    page.until(lambda: reactions() == [("👍 2", "false"), ("🎉 1", "false")], "2 and 1")

    # Kept in the history: a page opened afresh shows the same reactions, and the reply's
    # quote. (Under another name: the first page's may not be free again yet.)
    page.driver.get("about:blank")
    page.open(running)
    page.sign_in("talker2")
    page.wait_line(INJECTION)

    def scrolled_back() -> bool:  # (the question is a page back: scrolling up fetches it)
        page.driver.execute_script("document.getElementById('log').scrollTop = 0")
        return "lunch at noon?" in page.texts()

    page.until(scrolled_back, "the question fetched")
    page.until(lambda: reactions() == [("👍 2", "false"), ("🎉 1", "false")], "replayed")
    quote = line_of(page, "yes, see you there").find_element(By.CSS_SELECTOR, ".quote")
    assert quote.text == "↪ peer: lunch at noon?"

    page.driver.execute_script("arguments[0].scrollIntoView()", line_of(page, "lunch at noon?"))
    line_of(page, "lunch at noon?").find_element(By.CSS_SELECTOR, ".reaction").click()
    sent = expect_from(peer, "TAGMSG", "talker2")
    assert sent.tags["+draft/react"] == "👍" and sent.tags["+draft/reply"] == msgid
    page.until(lambda: reactions()[0] == ("👍 3", "true"), "ours added")
    assert page.driver.switch_to.active_element.text == "👍 3"  # (the focus stays on it)
    page.driver.switch_to.active_element.send_keys(Keys.ENTER)  # (and the keyboard works)
    taken = expect_from(peer, "TAGMSG", "talker2")
    assert taken.tags["+draft/unreact"] == "👍"
    page.until(lambda: reactions()[0] == ("👍 2", "false"), "ours taken back")
    other.send(f"@+draft/unreact=🎉;+draft/reply={msgid} TAGMSG #lobby")
    page.until(lambda: reactions() == [("👍 2", "false")], "a reaction taken back")

    # React from the menu: the reactions offered, the one chosen sent.
    menu_action(page, "lunch at noon?", "React")
    page.until(lambda: page.driver.switch_to.active_element.text == "👍", "the reactions")
    page.driver.save_screenshot(str(shots(tmp_path) / "menu.png"))
    page.driver.switch_to.active_element.send_keys(Keys.ARROW_DOWN)
    page.driver.switch_to.active_element.send_keys(Keys.ARROW_DOWN)
    page.driver.switch_to.active_element.send_keys(Keys.ARROW_DOWN)
    page.driver.switch_to.active_element.send_keys(Keys.ENTER)
    assert expect_from(peer, "TAGMSG", "talker2").tags["+draft/react"] == "🎉"
    page.until(lambda: ("🎉 1", "true") in reactions(), "ours shown")

    # A reaction too long, or one to a message not shown, changes nothing and breaks nothing.
    peer.send(f"@+draft/react={'x' * 100};+draft/reply={msgid} TAGMSG #lobby")
    peer.send("@+draft/react=👍;+draft/reply=nosuchid TAGMSG #lobby")
    peer.send("PRIVMSG #lobby :after them")
    page.wait_line("after them")
    assert len(reactions()) == 2
    page.driver.execute_script("arguments[0].scrollIntoView()", line_of(page, "lunch at noon?"))
    page.driver.save_screenshot(str(shots(tmp_path) / "reactions.png"))

    # The question deleted: its reactions go, and the reply's quote says so.
    peer.send(f"REDACT #lobby {msgid}")
    page.until(lambda: "lunch at noon?" not in page.texts(), "the question deleted")
    assert not page.css("#log .reaction")
    page.until(
        lambda: (
            line_of(page, "yes, see you there").find_element(By.CSS_SELECTOR, ".quote").text
            == "↪ peer: message deleted"
        ),
        "the quote follows",
    )
    assert page.driver.execute_script("return window.__pwned") is None
    assert page.errors() == []


# -- read markers -------------------------------------------------------------------------------


def past(stamp: str) -> None:
    """Wait (at most a second) until the clock is past ``stamp``, a server time: a read
    marker is a time to the millisecond, so lines that are to be told apart by it must not
    share one."""
    at = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    deadline = time.monotonic() + 1.0
    while time.time() <= at + 0.002 and time.monotonic() < deadline:
        time.sleep(0.002)


def test_read_markers_are_shared_with_the_accounts_other_devices(
    make_server, page, clients, tmp_path
):
    running = make_server(web_port=0, db=str(tmp_path / "chat.db"))
    register_account(running.port, "reader", "passphrase")
    page.open(running)
    page.sign_in("reader", password="passphrase")
    caps = "draft/read-marker server-time message-tags batch"
    phone = sasl_user(running, clients, "readerphone", "reader", "passphrase", caps)
    talker = tcp_user(running, clients, "talker", "server-time message-tags")
    page.type("/join #news")
    page.until(lambda: page.shown() == "#news", "#news shown")
    phone.send("JOIN #news")
    phone.expect("366")
    talker.send("JOIN #news")
    talker.expect("366")
    page.select("#lobby")

    # Three lines while the browser shows another room: three unread.
    times: list[str] = []
    for i in range(3):
        if times:
            past(times[-1])
        talker.send(f"PRIVMSG #news :news {i}")
        times.append(phone.expect("PRIVMSG").tags["time"])
    page.until(lambda: page.badge("#news") == "3", "three unread")

    # The phone reads the first two: the browser counts one unread, and on opening the
    # room, shows the divider above the third.
    phone.send(f"MARKREAD #news timestamp={times[1]}")
    page.until(lambda: page.badge("#news") == "1", "one unread after the phone read two")
    page.select("#news")
    page.wait_line("news 2")
    log = [li.text for li in page.css("#log .line")]
    at = log.index("New since you last read")
    assert "news 1" in log[at - 1] and "news 2" in log[at + 1]
    page.driver.save_screenshot(str(shots(tmp_path) / "read-marker.png"))

    # The browser, showing it, has read it all: the phone is told.
    told = phone.expect("MARKREAD", "#news", f"timestamp={times[2]}")
    assert told.params == ("#news", f"timestamp={times[2]}")

    # The phone reads what came while the browser looked elsewhere: the count goes, and the
    # divider moves below what the phone read.
    page.select("#lobby")
    past(times[-1])
    talker.send("PRIVMSG #news :news 3")
    latest = phone.expect("PRIVMSG").tags["time"]
    page.until(lambda: page.badge("#news") == "1", "one unread")
    phone.send(f"MARKREAD #news timestamp={latest}")
    page.until(lambda: page.badge("#news") == "", "read on the phone")
    page.select("#news")
    page.wait_line("news 3")
    assert "New since you last read" not in [li.text for li in page.css("#log .line")]

    # A direct conversation too: read on the phone, it is read here.
    talker.send("PRIVMSG reader :just to you")
    page.until(lambda: page.badge("talker") == "1 (@1)", "the direct message counted")
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
    phone.send(f"MARKREAD talker timestamp={now.replace('+00:00', 'Z')}")
    page.until(lambda: page.badge("talker") == "", "read on the phone")

    # A hidden tab reads nothing: no marker moves until it is back in view.
    page.hide()
    talker.send("PRIVMSG #news :while hidden")
    hidden_at = phone.expect("PRIVMSG").tags["time"]
    assert not [m for m in phone.quiet(0.5) if m.command == "MARKREAD"]
    page.bring_back()
    phone.expect("MARKREAD", "#news", f"timestamp={hidden_at}")
    assert page.errors() == []


# -- metadata ---------------------------------------------------------------------------------


def png(colour: tuple[int, int, int], size: int = 16) -> bytes:
    """A small PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\0" + bytes(colour) * size
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def avatar_url() -> Iterator[str]:
    """The address of an avatar on a web server of its own (another origin than the
    page's, as avatars are)."""
    image = png((230, 120, 30))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(image)))
            self.end_headers()
            self.wfile.write(image)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/avatar.png"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_display_names_colours_and_avatars_from_metadata(
    make_server, page, clients, tmp_path, avatar_url
):
    running = make_server(web_port=0, db=str(tmp_path / "chat.db"))
    need(running, "draft/metadata-2")
    peer = tcp_user(running, clients, "peer", MODERN + " draft/metadata-2")
    peer.send("METADATA * SUB display-name color avatar status")
    peer.send("METADATA * SET display-name :Pat the Peer")
    peer.send("METADATA * SET color #d14")
    peer.send(f"METADATA * SET avatar :{avatar_url}")
    peer.sync()
    page.open(running)
    page.sign_in("viewer")
    peer.expect("JOIN")
    peer.send("PRIVMSG #lobby :hello with a name")

    def nick() -> tuple[str, str, str]:
        who = line_of(page, "hello with a name").find_element(By.CSS_SELECTOR, ".nick")
        return who.text, who.get_attribute("title"), who.value_of_css_property("color")

    page.until(lambda: nick() == ("Pat the Peer", "peer", "rgba(221, 17, 68, 1)"), "the name")
    picture = page.until(
        lambda: line_of(page, "hello with a name").find_element(By.CSS_SELECTOR, "img.avatar"),
        "the avatar",
    )
    page.until(
        lambda: page.driver.execute_script("return arguments[0].naturalWidth", picture) == 16,
        "the avatar loaded",
    )
    assert picture.get_attribute("alt") == ""
    members = page.driver.find_element(By.ID, "members")
    page.until(lambda: "Pat the Peer" in members.text and "peer" in members.text, "members")

    # Our own, with the commands: the server is asked, and says so.
    page.type("/displayname Vee Viewer")
    page.wait_line("Your display name is now Vee Viewer.")
    assert peer.expect("METADATA", "viewer", "display-name").params[-1] == "Vee Viewer"
    page.type("/color red")
    page.wait_line("A colour is written #rrggbb (or #rgb), such as #1e90ff.")
    page.type("/avatar javascript:alert(1)")
    page.wait_line("An avatar is the web address (https or http) of an image.")
    page.type("/color #2a7")
    page.wait_line("Your colour is now #2a7.")
    page.type("said with my name")
    page.until(
        lambda: (
            line_of(page, "said with my name").find_element(By.CSS_SELECTOR, ".nick").text
            == "Vee Viewer"
        ),
        "our own name shown",
    )

    # Someone in no room with us: watched (MONITOR) once a direct conversation is open, their
    # display name shown there and in the list of conversations.
    hermit = Client(running.port)
    clients.append(hermit)
    hermit.register("hermit", MODERN + " draft/metadata-2", join=False)
    hermit.send("METADATA * SET display-name :The Hermit")
    hermit.sync()
    hermit.send("PRIVMSG viewer :psst")
    page.until(lambda: page.target("hermit").text.startswith("The Hermit"), "the name listed")
    page.select("hermit")
    page.until(
        lambda: line_of(page, "psst").find_element(By.CSS_SELECTOR, ".nick").text == "The Hermit",
        "the name in the conversation",
    )
    page.driver.save_screenshot(str(shots(tmp_path) / "metadata-direct.png"))
    page.select("#lobby")
    page.driver.save_screenshot(str(shots(tmp_path) / "metadata.png"))

    # The profile form: it shows ours; what is changed there is set, an emptied field cleared.
    page.driver.find_element(By.CSS_SELECTOR, "#profile summary").click()
    name = page.driver.find_element(By.ID, "profile-name")
    assert name.get_attribute("value") == "Vee Viewer"
    assert page.driver.find_element(By.ID, "profile-colour").get_attribute("value") == "#22aa77"
    name.clear()
    name.send_keys("Vera")
    page.driver.find_element(By.ID, "profile-avatar").send_keys(avatar_url)
    page.driver.save_screenshot(str(shots(tmp_path) / "profile.png"))
    page.driver.find_element(By.CSS_SELECTOR, "#profile-form button").click()
    page.wait_line("Your display name is now Vera.")
    page.wait_line(f"Your avatar is now {avatar_url}.")
    said = [t for t in page.texts() if t.startswith("Your colour is now")]
    assert said == ["Your colour is now #2a7."]  # (unchanged: not sent again)
    page.driver.find_element(By.ID, "profile-no-colour").click()
    page.driver.find_element(By.CSS_SELECTOR, "#profile-form button").click()
    page.wait_line("Your colour is cleared.")
    page.until(lambda: page.driver.find_element(By.ID, "me").text == "Vera", "signed in as Vera")

    # Hostile values change nothing but the text: no style from a colour that is not one,
    # no picture from an address that is not a web one, markup shown as text.
    peer.send(f"METADATA * SET display-name :{INJECTION}")
    peer.send("METADATA * SET color :red;background:url(https://example.invalid/x)")
    peer.send("METADATA * SET avatar :javascript:window.__pwned=3")
    peer.sync()
    page.until(lambda: nick()[0] == INJECTION, "the new name, as text")
    item = line_of(page, "hello with a name")
    assert not item.find_elements(By.CSS_SELECTOR, "img")
    assert nick()[2] != "rgba(221, 17, 68, 1)"  # the old colour gone, no new one
    assert "url" not in (item.find_element(By.CSS_SELECTOR, ".nick").get_attribute("style") or "")
    peer.send("METADATA * SET display-name")
    page.until(lambda: nick()[0] == "peer", "the name cleared")
    assert page.driver.execute_script("return window.__pwned") is None
    assert page.errors() == []


# -- the checks, one by one (irc.js, in the page) ----------------------------------------------


def irc_js(page: Page, name: str, *calls: list) -> list:
    """irc.js's export ``name`` called in the page with each of ``calls`` (its arguments)."""
    return page.driver.execute_async_script(
        "const [name, calls, done] = arguments;"
        "import('/static/irc.js').then((irc) => done(calls.map((args) => irc[name](...args))))"
        ".catch((e) => done(String(e)));",
        name,
        calls,
    )


def test_colours_addresses_names_and_tags_from_the_network_are_checked(make_server, page):
    running = make_server(web_port=0)
    page.open(running)
    page.until(lambda: page.css("#alias"), "the page")
    colours = ["#d14", "#DD1144", "red", "#d14;x:y", "#12345", "url(x)", "#fff\n", "", "#abcd"]
    assert irc_js(page, "safeColour", *([c] for c in colours)) == [
        "#d14",
        "#DD1144",
        *[None] * 7,
    ]
    addresses = [
        "https://example.org/a.png",
        "http://127.0.0.1:8/a.png",
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "https://user:pw@example.org/a.png",
        "//example.org/a.png",
        "https://example.org/a b.png",
        "https://example.org/" + "x" * 3000,
    ]
    assert irc_js(page, "safeImageUrl", *([a] for a in addresses)) == [
        "https://example.org/a.png",
        "http://127.0.0.1:8/a.png",
        *[None] * 6,
    ]
    names = ["Pat", "  two\nlines\t", "\x02bold\x02", "x" * 100, "   "]
    assert irc_js(page, "safeDisplayName", *([n] for n in names)) == [
        "Pat",
        "two lines",
        "bold",
        "x" * 64,
        None,
    ]
    # A tag value cannot end the tags or the line; a name that is not a tag name is left out.
    tags = {"+draft/react": "a; b\\\r\nQUIT", "bad name": "x", "batch": "r1"}
    assert irc_js(page, "buildTagged", [tags, "TAGMSG", "#room"]) == [
        "@+draft/react=a\\:\\sb\\\\\\r\\nQUIT;batch=r1 TAGMSG #room"
    ]
    # Long lines are cut between words, never inside a character, and join back whole.
    text = "héllo wörld " * 60 + "🙂" * 200
    (pieces,) = irc_js(page, "splitBytes", [text, 100])
    assert "".join(pieces) == text
    assert all(len(p.encode()) <= 100 for p in pieces)
    assert pieces[0].endswith(" ")
    assert page.errors() == []
