"""The browser client's files as the web listener serves them: a fixed table, each with its
type and the page's strict Content-Security-Policy; nothing else of the package. And the
scripts never turn text into markup."""

from __future__ import annotations

import http.client
import re
from importlib import resources

import pytest

from chatcli.server.web import CLIENT_FILES, CLIENT_POLICY
from tests.conftest import RunningServer

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def running(make_server) -> RunningServer:
    return make_server(web_port=0)


def get(running: RunningServer, path: str) -> http.client.HTTPResponse:
    host, port = running.server.web_address
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response
    finally:
        conn.close()


def test_the_page_and_its_files_are_served_with_their_types_and_a_self_only_policy(running):
    host, port = running.server.web_address
    for path, (name, content_type) in CLIENT_FILES.items():
        conn = http.client.HTTPConnection(host, port, timeout=5)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        assert response.status == 200, path
        assert response.getheader("Content-Type") == content_type
        assert response.getheader("Content-Security-Policy") == CLIENT_POLICY
        assert response.getheader("X-Content-Type-Options") == "nosniff"
        assert body == (resources.files("chatcli") / "web" / name).read_bytes()
    assert "script-src 'self';" in CLIENT_POLICY and "'unsafe-inline'" not in CLIENT_POLICY


@pytest.mark.parametrize(
    "path",
    [
        "/static/",
        "/static/index.html",
        "/static/../server/web.py",
        "/static/%2e%2e/server/web.py",
        "/static/app.js/",
        "/web/app.js",
        "/index.html",
        "/static/py.typed",
    ],
)
def test_nothing_but_the_known_files_is_served(running, path):
    assert get(running, path).status == 404


def test_the_page_loads_only_its_own_module_and_style_and_nothing_inline():
    page = (resources.files("chatcli") / "web" / "index.html").read_text()
    assert re.findall(r'<script[^>]*src="([^"]+)"', page) == ["/static/app.js"]
    assert re.findall(r'<link rel="stylesheet" href="([^"]+)"', page) == ["/static/app.css"]
    assert "<style" not in page and " style=" not in page
    assert not re.search(r"\son\w+=", page, re.IGNORECASE)  # no inline event handlers
    assert "http://" not in page and "https://" not in page  # nothing from elsewhere


@pytest.mark.parametrize("name", ["app.js", "irc.js"])
def test_the_scripts_never_write_markup(name):
    script = (resources.files("chatcli") / "web" / name).read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, f"{name} uses {sink}"
    assert "http://" not in script and "https://" not in script  # nothing from elsewhere
