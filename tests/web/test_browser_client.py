"""The browser client (GET / on the web port), in a real browser: headless Chromium driven
by Selenium, against a real server on port 0, beside raw IRC clients over TCP.

One browser serves the whole module; each test opens the page afresh and leaves it blank,
so that its WebSocket is closed before its server stops. Every wait is bounded. The
phone-width test leaves screenshots (desktop and phone width), and the room operator's test
one of a /whois answer, in the directory named by CHATCLI_SCREENSHOTS, to look at, or in
their own temporary directory.

Notifications are the browser's own: the permission is granted over the DevTools protocol,
the tab is taken out of view by minimizing its window, and a spy on the page's Notification
counts those the browser says it showed. (No fake: the real constructor does the work.)"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Client, RunningServer, register_account

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(
        not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
        reason="Chromium and its driver are not installed (apt-get install chromium "
        "chromium-driver)",
    ),
]
WAIT = 10.0  # seconds any one thing in the page may take
INJECTION = "<img src=x onerror=window.__pwned=1>"
# A spy on the page's Notification: each one the client makes is the browser's own (the
# real constructor does the work); kept here are the ones made, and those the browser says
# it showed (its "show" event), with the title and body the browser holds.
SPY_ON_NOTIFICATIONS = """
const Real = window.Notification;
const seen = (window.__notifications = { made: 0, shown: [], failed: 0 });
window.Notification = class extends Real {
  constructor(title, options) {
    super(title, options);
    seen.made += 1;
    this.addEventListener("show", () => seen.shown.push({ title: this.title, body: this.body }));
    this.addEventListener("error", () => (seen.failed += 1));
  }
};
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1280,800",
    ):
        options.add_argument(arg)
    # What the page logs, Content-Security-Policy violations and script errors among it.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver's path is given: Selenium Manager has nothing to look for or download.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    """The client's page in the module's browser, and what a test does with it."""

    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver
        self.origin = ""  # (once opened)

    def open(self, running: RunningServer) -> None:
        host, port = running.server.web_address
        self.origin = f"http://{host}:{port}"
        self.driver.get(f"{self.origin}/")

    def allow_notifications(self) -> None:
        """Grant the page's origin the notification permission, as a user who said yes
        would (headless Chromium refuses every request), and spy on the notifications."""
        self.driver.execute_cdp_cmd(
            "Browser.grantPermissions", {"permissions": ["notifications"], "origin": self.origin}
        )
        self.driver.execute_script(SPY_ON_NOTIFICATIONS)

    def notifications(self) -> dict:
        """How many notifications the client made, which the browser showed, and how many
        it could not."""
        return self.driver.execute_script("return window.__notifications")

    def permission(self) -> str:
        return self.driver.execute_script("return Notification.permission")

    def visibility(self) -> str:
        return self.driver.execute_script("return document.visibilityState")

    def hide(self) -> None:
        """Take the tab out of view: its window minimized, as a user would."""
        self.driver.minimize_window()
        self.until(lambda: self.visibility() == "hidden", "the tab hidden")

    def bring_back(self) -> None:
        self.driver.set_window_size(1280, 800)
        self.until(lambda: self.visibility() == "visible", "the tab in view")

    def until(self, check: Callable[[], object], what: str, timeout: float = WAIT):
        def attempt(_: object) -> object:
            try:
                return check()
            except StaleElementReferenceException:  # redrawn meanwhile: look again
                return None

        return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(
            attempt, f"waited {timeout} s for {what}"
        )

    def errors(self) -> list[str]:
        """What the page logged as errors since last asked: a script failing, or anything
        the Content-Security-Policy refused."""
        return [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    def css(self, selector: str) -> list:
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def sign_in(self, nick: str, password: str = "", create: bool = False) -> None:
        self.until(lambda: self.css("#alias"), "the sign-in form")
        self.driver.find_element(By.ID, "alias").send_keys(nick)
        if password:
            self.driver.find_element(By.ID, "password").send_keys(password)
        if create:
            self.driver.find_element(By.ID, "create").click()
        self.driver.find_element(By.CSS_SELECTOR, "#signin button").click()
        self.until(lambda: self.shown() == "#lobby", "the default room")

    def shown(self) -> str:
        return self.driver.find_element(By.ID, "room-name").text

    def texts(self) -> list[str]:
        """The text of each line of the log shown."""
        return [item.text for item in self.css("#log .line .text")]

    def wait_line(self, text: str) -> None:
        self.until(lambda: text in self.texts(), f"{text!r} in the log of {self.shown()}")

    def type(self, text: str) -> None:
        field = self.driver.find_element(By.ID, "input")
        field.send_keys(text)
        self.driver.find_element(By.CSS_SELECTOR, "#send button").click()

    def target(self, name: str):
        """The button of a room or conversation in the side list."""
        return self.until(
            lambda: next(
                (b for b in self.css("#sidebar .target") if b.get_attribute("data-name") == name),
                None,
            ),
            f"{name} in the room list",
        )

    def badge(self, name: str) -> str:
        badges = self.target(name).find_elements(By.CSS_SELECTOR, ".badge")
        return badges[0].text if badges else ""

    def select(self, name: str) -> None:
        self.target(name).click()
        self.until(lambda: self.shown() == name, f"{name} shown")


@pytest.fixture
def page(browser: webdriver.Chrome, make_server: Callable[..., RunningServer]) -> Iterator[Page]:
    # (Asks for make_server so that its servers stop after the page is blank again.)
    page = Page(browser)
    page.errors()  # (what an earlier test left)
    yield page
    browser.get("about:blank")
    browser.set_window_size(1280, 800)  # (restored, too, if it was minimized)
    browser.execute_cdp_cmd("Browser.resetPermissions", {})  # (granted, or refused)


def tcp_user(running: RunningServer, clients: list[Client], nick: str, caps: str = "") -> Client:
    client = Client(running.port)
    clients.append(client)
    client.register(nick, caps)
    return client


def test_a_browser_user_talks_with_a_terminal_user_in_rooms_and_directly(
    make_server, page, clients
):
    running = make_server(web_port=0)
    tcp = tcp_user(running, clients, "terminal")
    page.open(running)
    page.sign_in("browser")
    tcp.expect("JOIN")

    page.type("hello from the browser")
    assert tcp.expect("PRIVMSG").params == ("#lobby", "hello from the browser")
    page.wait_line("hello from the browser")  # (its echo)
    tcp.send("PRIVMSG #lobby :hello from a terminal")
    page.wait_line("hello from a terminal")

    # A room of its own, with lines while another is shown: counted, and a mention too.
    page.type("/join #other")
    page.until(lambda: page.shown() == "#other", "#other shown")
    tcp.send("JOIN #other")
    page.select("#lobby")
    tcp.send("PRIVMSG #other :one")
    tcp.send("PRIVMSG #other :two, browser")
    page.until(lambda: page.badge("#other") == "2 (@1)", "two unread, one a mention")
    assert page.driver.title == "(2) chatcli"
    page.select("#other")
    page.wait_line("two, browser")
    assert page.badge("#other") == ""
    assert page.driver.title == "chatcli"

    # Directly, both ways: a message opens the conversation; a member's name opens one too.
    tcp.send("PRIVMSG browser :just to you")
    page.until(lambda: page.badge("terminal") == "1 (@1)", "the direct message counted")
    page.select("terminal")
    page.wait_line("just to you")
    page.select("#other")
    member = page.until(
        lambda: next((b for b in page.css("#members .target") if b.text == "terminal"), None),
        "terminal among the members",
    )
    member.click()
    page.until(lambda: page.shown() == "terminal", "the conversation opened")
    page.type("and back to you")
    assert tcp.expect("PRIVMSG").params == ("terminal", "and back to you")
    page.type("/me waves")
    assert tcp.expect("PRIVMSG").params == ("terminal", "\x01ACTION waves\x01")
    page.wait_line("waves")
    assert page.errors() == []


def test_mentions_and_direct_messages_raise_a_notification_while_the_tab_is_hidden(
    make_server, page, clients
):
    running = make_server(web_port=0)
    tcp = tcp_user(running, clients, "caller")
    page.open(running)
    page.allow_notifications()
    page.sign_in("browser")
    assert page.permission() == "granted"

    # In view, a mention is seen where it is: no notification.
    tcp.send("PRIVMSG #lobby :browser, are you there?")
    page.wait_line("browser, are you there?")
    assert page.notifications()["made"] == 0

    page.hide()
    # Out of view: an ordinary line raises none; a mention and a direct message raise one
    # each, which names the room and who spoke, its text as plain text.
    tcp.send("PRIVMSG #lobby :just chatting")
    page.wait_line("just chatting")
    assert page.notifications()["made"] == 0
    tcp.send(f"PRIVMSG #lobby :\x02browser\x02: look {INJECTION}")
    tcp.send("PRIVMSG browser :a word in private")
    page.until(lambda: len(page.notifications()["shown"]) == 2, "two notifications shown")
    seen = page.notifications()
    assert (seen["made"], seen["failed"]) == (2, 0)
    assert sorted(seen["shown"], key=lambda n: n["title"]) == [
        {"title": "caller", "body": "a word in private"},
        {"title": "caller in #lobby", "body": f"browser: look {INJECTION}"},
    ]
    # The title counts what came while away, the room shown included, until it is seen.
    assert page.driver.title == "(3) chatcli"
    page.bring_back()
    page.until(lambda: page.driver.title == "(1) chatcli", "the room shown read on return")
    page.select("caller")
    page.until(lambda: page.driver.title == "chatcli", "everything read")
    assert page.driver.execute_script("return window.__pwned") is None
    assert page.errors() == []


def test_the_client_asks_for_permission_to_notify_on_signing_in_not_before(make_server, page):
    running = make_server(web_port=0)
    page.open(running)
    page.until(lambda: page.css("#alias"), "the sign-in form")
    assert page.permission() == "default"  # not asked on opening the page
    page.sign_in("asked")
    # Headless Chromium refuses every request at once: the refusal shows it was asked.
    page.until(lambda: page.permission() == "denied", "the permission asked for")
    assert page.errors() == []


def test_scrolling_to_the_top_loads_earlier_lines_from_the_history(
    make_server, page, clients, tmp_path
):
    running = make_server(web_port=0, db=str(tmp_path / "chat.db"), flood_rate=0)
    tcp = tcp_user(running, clients, "talker")
    for i in range(120):
        tcp.send(f"PRIVMSG #lobby :line {i:03}")
    tcp.sync()
    page.open(running)
    page.sign_in("reader")
    page.wait_line("line 119")
    shown = page.texts()
    assert "line 000" not in shown  # only the latest page came at first
    for _ in range(10):  # each scroll to the top asks for one page more
        if "line 000" in page.texts():
            break
        page.driver.execute_script("document.getElementById('log').scrollTop = 0")
        time.sleep(0.2)
    lines = [t for t in page.texts() if t.startswith("line ")]
    assert lines == [f"line {i:03}" for i in range(120)]  # all, in order, none twice
    assert page.errors() == []


def test_markup_in_a_nick_a_topic_and_a_message_stays_text(make_server, page, clients):
    running = make_server(web_port=0)
    page.open(running)
    page.sign_in("victim")
    raw = Client(running.port)
    clients.append(raw)
    # A nick cannot hold "<" or spaces; what it can hold, it shows as it is.
    nick = "x{img}\\`"
    raw.register(nick, join=False)
    raw.send("JOIN #evil")
    raw.send(f"TOPIC #evil :{INJECTION}")
    raw.sync()
    page.type("/join #evil")
    page.until(lambda: nick in page.driver.find_element(By.ID, "members").text, "the nick")
    raw.send(f"PRIVMSG #evil :{INJECTION} <script>window.__pwned=2</script>")
    raw.send(f"PRIVMSG victim :\x02bold\x02 \x0304red\x03 {INJECTION}")
    raw.sync()
    page.until(lambda: INJECTION in page.driver.find_element(By.ID, "room-topic").text, "topic")
    page.wait_line(f"{INJECTION} <script>window.__pwned=2</script>")
    page.select(nick)
    page.wait_line(f"bold red {INJECTION}")  # formatting codes gone, the rest as text
    assert not page.css("img"), "an element was made from a message"
    assert not page.css("#log script")
    assert page.driver.execute_script("return window.__pwned") is None
    assert page.errors() == []


def test_after_a_server_restart_the_client_comes_back_and_catches_up(
    make_server, page, clients, tmp_path
):
    db = str(tmp_path / "chat.db")
    first = make_server(web_port=0, db=db)
    web_port = first.server.web_address[1]
    page.open(first)
    page.sign_in("returner", password="correct horse", create=True)
    page.until(lambda: "Account returner created." in page.driver.page_source, "the account")
    page.type("before the restart")
    page.wait_line("before the restart")

    first.stop()
    page.until(lambda: "Reconnecting" in page.driver.find_element(By.ID, "status").text, "down")
    second = make_server(web_port=web_port, db=db)
    tcp = tcp_user(second, clients, "stayer")
    tcp.send("PRIVMSG #lobby :while you were away")
    tcp.sync()
    # Back (with its account, over SASL), in the room, with what it missed, once.
    tcp.expect("JOIN", timeout=WAIT + 30)
    page.wait_line("while you were away")
    texts = page.texts()
    assert texts.count("before the restart") == 1
    assert texts.count("while you were away") == 1
    tcp.send("WHOIS returner")
    assert any(m.command == "330" for m in tcp.collect("318"))  # logged in as the account


def test_at_phone_width_the_room_list_is_behind_a_button(make_server, page, tmp_path):
    running = make_server(web_port=0)
    page.open(running)
    page.sign_in("phone")
    page.type("a line to see")
    page.wait_line("a line to see")
    shots = Path(os.environ.get("CHATCLI_SCREENSHOTS", tmp_path))
    page.driver.save_screenshot(str(shots / "desktop.png"))
    page.driver.set_window_size(390, 844)
    sidebar = page.driver.find_element(By.ID, "sidebar")
    page.until(lambda: not sidebar.is_displayed(), "the room list folded away")
    page.driver.save_screenshot(str(shots / "phone.png"))
    toggle = page.driver.find_element(By.ID, "toggle-rooms")
    toggle.click()
    page.until(sidebar.is_displayed, "the room list shown")
    assert toggle.get_attribute("aria-expanded") == "true"
    page.driver.save_screenshot(str(shots / "phone-rooms.png"))
    page.target("#lobby").click()
    page.until(lambda: not sidebar.is_displayed(), "the room list closed on choosing")


def test_the_input_lines_commands_become_irc_commands(make_server, page, clients):
    running = make_server(web_port=0)
    tcp = tcp_user(running, clients, "watcher", "away-notify")
    page.open(running)
    page.sign_in("typist")
    tcp.expect("JOIN")
    page.type("/topic plans for today")
    assert tcp.expect("TOPIC").params == ("#lobby", "plans for today")
    topic = page.driver.find_element(By.ID, "room-topic")
    page.until(lambda: topic.text == "plans for today", "the topic shown")
    page.type("/msg watcher psst")
    assert tcp.expect("PRIVMSG").params == ("watcher", "psst")
    page.until(lambda: page.shown() == "watcher", "the conversation shown")
    page.type("/away lunch")
    assert tcp.expect("AWAY").params == ("lunch",)
    page.type("/away")
    assert tcp.expect("AWAY").params == ()
    page.type("/nick typist2")
    assert tcp.expect("NICK").params == ("typist2",)
    page.until(lambda: page.driver.find_element(By.ID, "me").text == "typist2", "the new nick")
    page.select("#lobby")
    page.type("/part")
    assert tcp.expect("PART").params[0] == "#lobby"
    page.until(lambda: not page.css("#rooms .target"), "the room gone from the list")
    page.type("/bogus")
    page.wait_line("Unknown command /bogus. Try /help.")
    assert page.errors() == []


def test_a_wrong_password_is_told_on_the_sign_in_form(make_server, page, tmp_path):
    running = make_server(web_port=0, db=str(tmp_path / "chat.db"))
    register_account(running.port, "owner", "right password")
    page.open(running)
    page.until(lambda: page.css("#alias"), "the sign-in form")
    page.driver.find_element(By.ID, "alias").send_keys("owner")
    page.driver.find_element(By.ID, "password").send_keys("wrong password")
    page.driver.find_element(By.CSS_SELECTOR, "#signin button").click()
    error = page.driver.find_element(By.ID, "signin-error")
    page.until(lambda: error.text == "Wrong alias or password.", "the error")
    assert page.driver.find_element(By.ID, "chat-view").get_attribute("hidden") is not None


def test_signing_in_to_an_account_opens_no_conversation_with_nickserv(make_server, page, tmp_path):
    running = make_server(web_port=0, db=str(tmp_path / "chat.db"))
    register_account(running.port, "owner", "passphrase")
    page.open(running)
    page.sign_in("owner", password="passphrase")  # (in #lobby: past the welcome)
    names = [b.get_attribute("data-name") for b in page.css("#sidebar .target")]
    assert "NickServ" not in names
    assert page.errors() == []


def test_a_room_operator_asks_and_acts_with_the_terminals_commands(
    make_server, page, clients, tmp_path
):
    running = make_server(web_port=0)
    page.open(running)
    page.sign_in("boss")
    peer = tcp_user(running, clients, "peer")
    page.type("/join #ops")  # a new room: its first member runs it
    page.until(lambda: page.shown() == "#ops", "#ops shown")
    peer.send("JOIN #ops")
    peer.expect("366")
    members = page.driver.find_element(By.ID, "members")
    page.until(lambda: "peer" in members.text.split(), "peer among the members")
    assert not [t for t in page.texts() if t.startswith("In #ops")]  # NAMES on joining: quiet

    # Answers are shown once, as lines of text: a WHOIS on one line, with the real name.
    page.type("/whois peer")
    page.until(lambda: any(t.startswith("peer is ~peer@") for t in page.texts()), "the WHOIS")
    (whois,) = [t for t in page.texts() if t.startswith("peer is ")]
    assert "(Real peer) · on " in whois and "#ops" in whois and " · idle " in whois
    shots = Path(os.environ.get("CHATCLI_SCREENSHOTS", tmp_path))
    page.driver.save_screenshot(str(shots / "whois.png"))
    page.type("/users")
    page.wait_line("In #ops (2): @boss, peer")
    page.type("/list")
    page.wait_line("#ops · 2 people")
    page.type("/who #ops")
    page.wait_line("Who #ops (2):")
    assert any(t.startswith("peer (~peer@") and t.endswith(" — Real peer") for t in page.texts())
    page.type("/ban")
    page.wait_line("No bans in #ops.")

    # Ranks and removal: the peer is told, with the reason; the page shows it.
    page.type("/op peer")
    assert peer.expect("MODE").params == ("#ops", "+o", "peer")
    page.wait_line("boss sets +o peer")
    page.until(lambda: "@peer" in members.text.split(), "peer shown as an operator")
    page.type("/kick peer too noisy")
    assert peer.expect("KICK").params == ("#ops", "peer", "too noisy")
    page.wait_line("peer was removed by boss (too noisy)")

    # /ignore hides the peer's messages (and is kept for the next visit); /unignore not.
    page.select("#lobby")
    page.type("/ignore peer")
    page.wait_line("Ignoring peer!*@*: their messages are not shown.")
    stored = page.driver.execute_script("return localStorage.getItem('chatcli.ignores')")
    assert stored == '["peer!*@*"]'
    peer.send("PRIVMSG #lobby :you cannot see this")
    peer.sync()
    page.type("a line after it")  # (its echo comes after the ignored line)
    page.wait_line("a line after it")
    page.type("/unignore peer")
    page.wait_line("No longer ignoring peer.")
    peer.send("PRIVMSG #lobby :but this you can")
    page.wait_line("but this you can")
    assert "you cannot see this" not in page.texts()
    page.type("/ignore")
    page.wait_line("You ignore no one.")
    assert page.errors() == []


def test_reply_clear_history_quote_register_usage_and_help(make_server, page, clients, tmp_path):
    running = make_server(web_port=0, db=str(tmp_path / "chat.db"))
    friend = tcp_user(running, clients, "friend")
    page.open(running)
    page.sign_in("asker")
    friend.expect("JOIN")
    friend.send("PRIVMSG #lobby :good morning")
    page.wait_line("good morning")

    # /r answers whoever sent the last direct message, in that conversation.
    friend.send("PRIVMSG asker :are you free?")
    page.until(lambda: page.badge("friend") == "1 (@1)", "the direct message")
    page.type("/r yes, now")
    assert friend.expect("PRIVMSG").params == ("friend", "yes, now")
    page.until(lambda: page.shown() == "friend", "the conversation shown")
    page.wait_line("yes, now")

    # /clear empties the view; /history N brings back the N lines before.
    page.select("#lobby")
    page.type("/clear")
    page.until(lambda: page.texts() == [], "the view empty")
    page.type("/history 1")
    page.wait_line("good morning")

    page.type("/quote PRIVMSG friend :sent as it is")
    assert friend.expect("PRIVMSG").params == ("friend", "sent as it is")
    page.type("/register open-sesame")
    page.wait_line("Account asker created.")
    page.type("/kick")
    page.wait_line("Usage: /kick [#room] <alias> [reason]")
    page.type("/help")
    page.wait_line("/whois <alias> — details about someone")
    listed = {t.split()[0] for t in page.texts() if t.startswith("/")}
    for command in ("/r", "/users", "/who", "/list", "/invite", "/ban", "/unban", "/op", "/deop"):
        assert command in listed
    for command in ("/voice", "/devoice", "/mode", "/close", "/ignore", "/unignore", "/quit"):
        assert command in listed
    assert len(listed) >= 30
    assert page.errors() == []


def test_reconnect_comes_back_and_quit_signs_out_to_sign_in_again(make_server, page, clients):
    running = make_server(web_port=0)
    page.open(running)
    page.sign_in("leaver")
    watcher = tcp_user(running, clients, "watcher")
    page.type("/reconnect")
    assert watcher.expect("QUIT").source.startswith("leaver!")
    assert watcher.expect("JOIN").source.startswith("leaver!")
    page.until(lambda: page.driver.find_element(By.ID, "me").text == "leaver", "back as leaver")

    page.type("/quit gone for lunch")
    assert "gone for lunch" in watcher.expect("QUIT").params[0]
    error = page.driver.find_element(By.ID, "signin-error")
    page.until(lambda: error.text == "You have signed out.", "the sign-in form")
    page.driver.find_element(By.ID, "alias").clear()
    page.sign_in("leaver")  # and in again
    assert watcher.expect("JOIN").source.startswith("leaver!")
    assert page.errors() == []
