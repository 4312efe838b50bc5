"""A room renamed (IRCv3 draft/channel-rename) in the browser client, in a real browser
(headless Chromium, the same fixtures as test_browser_client.py) against a real server,
beside raw IRC clients over TCP: the conversation takes the new name in place, with its
lines, members, unread count and reply, and a line says who renamed it; /rename asks for
it, and the server's refusal is shown.

Each test also checks that the page logged no script error and nothing its
Content-Security-Policy refused. A screenshot after a rename is left in the directory named
by CHATCLI_SCREENSHOTS, or in the test's own temporary directory."""

from __future__ import annotations

import os

import pytest

from tests.web import test_browser_client as base
from tests.web.test_browser_client import CHROMEDRIVER, CHROMIUM, INJECTION, tcp_user
from tests.web.test_browser_modern import MODERN, line_of, menu_action, need, shots

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402

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
RENAME = "draft/channel-rename"


def names(page: base.Page) -> list[str]:
    """The rooms and conversations of the side list, by name."""
    return [b.get_attribute("data-name") for b in page.css("#sidebar .target")]


def members(page: base.Page) -> list[str]:
    return page.driver.find_element(By.ID, "members").text.split()


def test_a_room_renamed_by_its_operator_keeps_its_conversation_in_place(
    make_server, page, clients, tmp_path
):
    running = make_server(web_port=0, db=str(tmp_path / "chat.db"))
    need(running, RENAME)
    peer = tcp_user(running, clients, "peer", f"{MODERN} {RENAME}")
    page.open(running)
    page.sign_in("boss")
    peer.send("JOIN #dev")  # (its first member: its operator)
    peer.expect("366")
    page.type("/join #dev")
    page.until(lambda: page.shown() == "#dev", "#dev shown")
    peer.send("PRIVMSG #dev :before the rename")
    question = peer.expect("PRIVMSG")
    line_of(page, "before the rename")
    page.until(lambda: {"@peer", "boss"} <= set(members(page)), "both among the members")

    # A reply is being written when the room shown is renamed: it stays, and goes there.
    menu_action(page, "before the rename", "Reply")
    bar = page.driver.find_element(By.ID, "reply-bar")
    page.until(bar.is_displayed, "the reply bar")
    peer.send("RENAME #dev #devs :clearer name")
    assert peer.expect("RENAME").params == ("#dev", "#devs", "clearer name")
    page.wait_line("peer renamed #dev to #devs (clearer name)")
    assert page.shown() == "#devs"
    assert "before the rename" in page.texts()
    assert "#devs" in names(page) and "#dev" not in names(page)
    target = page.target("#devs")
    assert target.get_attribute("aria-current") == "true"
    assert {"@peer", "boss"} <= set(members(page))
    assert page.driver.find_element(By.ID, "log").get_attribute("aria-label") == (
        "Messages in #devs"
    )
    assert bar.is_displayed()
    page.driver.save_screenshot(str(shots(tmp_path) / "renamed.png"))
    page.type("after the rename")
    answer = peer.expect("PRIVMSG")
    assert answer.params == ("#devs", "after the rename")
    assert answer.tags["+draft/reply"] == question.tags["msgid"]
    page.wait_line("after the rename")

    # A room not shown, with a line unread, renamed (only its case changed): the count
    # follows it, and its lines are there when it is opened.
    peer.send("JOIN #side")
    peer.expect("366")
    page.type("/join #side")
    page.until(lambda: page.shown() == "#side", "#side shown")
    peer.send("PRIVMSG #side :said before")
    page.wait_line("said before")
    page.select("#lobby")
    peer.send(f"PRIVMSG #side :{INJECTION}")
    page.until(lambda: page.badge("#side") == "1", "the line counted")
    peer.send("RENAME #side #SIDE")
    assert peer.expect("RENAME").params == ("#side", "#SIDE", "")
    page.until(lambda: "#SIDE" in names(page), "#SIDE in the room list")
    assert "#side" not in names(page)
    assert page.badge("#SIDE") == "1"
    assert page.shown() == "#lobby"
    page.select("#SIDE")
    page.wait_line("peer renamed #side to #SIDE")
    assert page.texts()[-3:] == ["said before", INJECTION, "peer renamed #side to #SIDE"]
    assert page.badge("#SIDE") == ""
    assert page.driver.execute_script("return window.__pwned") is None

    # A RENAME of a room the page is not in changes nothing.
    peer.send("JOIN #elsewhere")
    peer.expect("366")
    peer.send("RENAME #elsewhere #moved")
    peer.expect("RENAME")
    page.type("/join #last")
    page.until(lambda: page.shown() == "#last", "#last shown")
    assert "#moved" not in names(page)
    assert page.errors() == []


def test_slash_rename_renames_the_room_shown_and_the_servers_refusal_is_shown(
    make_server, page, clients, tmp_path
):
    running = make_server(web_port=0, db=str(tmp_path / "chat.db"))
    need(running, RENAME)
    peer = tcp_user(running, clients, "peer", RENAME)
    plain = tcp_user(running, clients, "plain")  # (without the capability)
    page.open(running)
    page.sign_in("boss")
    page.type("/help")
    page.wait_line("/rename <#new name> [reason] — give the room a new name (its operators)")
    page.type("/join #mine")  # a new room: its first member runs it
    page.until(lambda: page.shown() == "#mine", "#mine shown")
    peer.send("JOIN #mine")
    peer.expect("366")
    plain.send("JOIN #mine")
    plain.expect("366")
    page.type("/rename")
    page.wait_line("Usage: /rename <#new name> [reason]")
    page.type("/rename yours")
    assert page.texts().count("Usage: /rename <#new name> [reason]") == 2

    page.type("/rename #yours a new home")
    assert peer.expect("RENAME").params == ("#mine", "#yours", "a new home")
    assert plain.expect("PART").params == ("#mine", "a new home")  # (the fallback)
    page.wait_line("boss renamed #mine to #yours (a new home)")
    assert page.shown() == "#yours"
    page.type("still here")
    assert peer.expect("PRIVMSG").params == ("#yours", "still here")

    # Refused by the server: not the room's operator (482), and a name another room has.
    peer.send("JOIN #theirs")
    peer.expect("366")
    page.type("/join #theirs")
    page.until(lambda: page.shown() == "#theirs", "#theirs shown")
    page.type("/rename #stolen")
    page.wait_line("#theirs You're not channel operator")
    assert page.shown() == "#theirs"
    page.select("#yours")
    page.type("/rename #theirs")
    page.until(
        lambda: any(
            t.startswith("RENAME: #theirs is the name of another room") for t in page.texts()
        ),
        "the FAIL shown",
    )
    assert page.shown() == "#yours"
    page.select("#lobby")
    page.type("/rename #nowhere")
    page.until(
        lambda: any(
            t.startswith("RENAME: #lobby is this server's default room") for t in page.texts()
        ),
        "the FAIL shown",
    )
    assert page.shown() == "#lobby"
    assert page.errors() == []
