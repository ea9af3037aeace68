"""The Origin check (cross-site WebSocket hijacking, RFC 6455 §10.2): from raw handshakes
and from pages in real headless Chromium served on another origin."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from .conftest import Serve, connect, refused_status
from .wire import http_status, upgrade_request

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update"]


@pytest.mark.parametrize("path", ["/ws", "/echo"])
async def test_default_allows_same_host_and_no_origin(serve: Serve, unit: float,
                                                      path: str) -> None:
    """By default a page on the server's own host:port and non-browser clients get in."""
    runner = await serve()
    welcome = path == "/ws"
    for origin in (None, f"http://127.0.0.1:{runner.port}", f"HTTP://127.0.0.1:{runner.port}/"):
        kwargs: dict[str, Any] = {"origin": origin} if origin else {}
        if welcome:
            c = await connect(runner, unit, path=path, **kwargs)
            await c.close()
        else:
            status = await http_status(runner.port, upgrade_request(
                runner.port, path, f"Origin: {origin}\r\n" if origin else ""), unit)
            assert status == 101, origin


@pytest.mark.parametrize("path", ["/ws", "/echo"])
async def test_default_refuses_other_origins_with_403(serve: Serve, unit: float,
                                                      path: str) -> None:
    """Another host, another port, localhost-for-127.0.0.1 or `null` is refused with 403."""
    runner = await serve()
    port = runner.port
    for origin in ("http://evil.example", f"http://localhost:{port}", "null",
                   f"http://127.0.0.1:{port + 1}", f"http://127.0.0.1.evil.example:{port}",
                   "file://"):
        assert await refused_status(runner.ws_url + path, unit, origin=origin) == 403, origin
    assert runner.server.connections == set()


async def test_allowed_origins_list(serve: Serve, unit: float) -> None:
    """With allowed_origins only those origins get in (default ports made explicit)."""
    runner = await serve(allowed_origins=("https://app.example", "http://127.0.0.1:3000"))
    for origin in ("https://app.example", "https://APP.example:443", "http://127.0.0.1:3000"):
        c = await connect(runner, unit, origin=origin)
        await c.close()
    for origin in ("http://app.example", "https://app.example:8443", "https://evil.example",
                   f"http://127.0.0.1:{runner.port}"):  # the server's own host is not implied
        assert await refused_status(runner.ws_url + "/ws", unit, origin=origin) == 403, origin
    c = await connect(runner, unit)  # no Origin: not a browser
    await c.close()


async def test_allowed_origins_star_allows_any(serve: Serve, unit: float) -> None:
    """allowed_origins=('*',) lets any Origin in."""
    runner = await serve(allowed_origins=("*",))
    c = await connect(runner, unit, origin="http://evil.example")
    await c.close()


async def test_explicit_origins_stop_dns_rebinding(serve: Serve, unit: float) -> None:
    """With a list, a rebound name (Host and Origin both evil:PORT) is refused."""
    runner = await serve(allowed_origins=("https://app.example",))
    port = runner.port
    request = upgrade_request(port, extra=f"Origin: http://evil.example:{port}\r\n")
    request = request.replace(f"Host: 127.0.0.1:{port}".encode(),
                              f"Host: evil.example:{port}".encode())
    assert await http_status(port, request, unit) == 403


def _behind_tls_proxy(port: int) -> bytes:
    """The upgrade request nginx forwards for https://chat.example (TLS ends at nginx;
    `proxy_set_header Host $http_host` keeps the browser's Host, which has no port)."""
    request = upgrade_request(port, extra="Origin: https://chat.example\r\n"
                              "X-Forwarded-Proto: https\r\nX-Forwarded-For: 203.0.113.9\r\n")
    return request.replace(f"Host: 127.0.0.1:{port}".encode(), b"Host: chat.example")


async def test_behind_a_tls_proxy_with_allowed_origins(serve: Serve, unit: float) -> None:
    """Behind a TLS-terminating proxy, allowed_origins=https://chat.example lets the page in."""
    runner = await serve(allowed_origins=("https://chat.example",))
    assert await http_status(runner.port, _behind_tls_proxy(runner.port), unit) == 101


async def test_behind_a_tls_proxy_default_same_host_check(serve: Serve, unit: float) -> None:
    """Behind a TLS-terminating proxy (X-Forwarded-Proto: https, Host without a port) the
    default same-host check accepts the page's own origin https://chat.example."""
    runner = await serve()
    assert await http_status(runner.port, _behind_tls_proxy(runner.port), unit) == 101


@pytest.mark.parametrize("header", [
    "Origin: http://127.0.0.1:99999", "Origin: http://[::1", "Origin: http://a:b:c",
])
async def test_malformed_origin_is_refused_not_a_server_error(serve: Serve, unit: float,
                                                              header: str) -> None:
    """An Origin that is not a URL gets 403 (never a 500 with a traceback)."""
    runner = await serve()
    status = await http_status(runner.port, upgrade_request(runner.port, extra=header + "\r\n"),
                               unit)
    assert status == 403


@pytest.mark.parametrize("host", ["127.0.0.1:abc", "[::1", "127.0.0.1:99999"])
async def test_malformed_host_with_origin_is_refused_not_a_server_error(
        serve: Serve, unit: float, host: str) -> None:
    """A Host header that is not host:port, with an Origin, gets a 4xx (never a 500)."""
    runner = await serve()
    port = runner.port
    request = upgrade_request(port, extra=f"Origin: http://127.0.0.1:{port}\r\n")
    request = request.replace(f"Host: 127.0.0.1:{port}".encode(), f"Host: {host}".encode())
    status = await http_status(port, request, unit)
    assert status is not None and 400 <= status < 500, status


# -- in a real browser ---------------------------------------------------------------------


def _browser_missing() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the Python playwright package is missing (run scripts/browser_deps.sh)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (run scripts/browser_deps.sh)"
    return None


OPEN_SOCKET = """url => new Promise(resolve => {
  const ws = new WebSocket(url);
  ws.onmessage = e => { resolve("message " + e.data); ws.close(); };
  ws.onclose = e => resolve("closed " + e.code);
})"""


@pytest.fixture
async def page(unit: float) -> AsyncIterator[Any]:
    """A page in headless Debian Chromium (Python playwright; never `playwright install`)."""
    missing = _browser_missing()
    if missing:
        pytest.skip(missing)
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                           headless=True, timeout=unit * 6 * 1000)
        try:
            p = await browser.new_page()
            p.set_default_timeout(unit * 2 * 1000)
            yield p
        finally:
            await browser.close()


@pytest.fixture
async def other_site() -> AsyncIterator[str]:
    """A second web server on 127.0.0.1:0 (another origin) serving an empty page."""
    app = web.Application()

    async def index(_request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><title>other site</title>",
                            content_type="text/html")

    app.router.add_get("/", index)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_browser_page_on_another_origin_cannot_connect(
        serve: Serve, page: Any, other_site: str, caplog: pytest.LogCaptureFixture) -> None:
    """Chromium: a page from another origin fails to open /ws (403); the wirehub page connects."""
    caplog.set_level(logging.INFO, logger="wirehub.admission")
    runner = await serve()
    ws_url = runner.ws_url + "/ws"
    await page.goto(other_site + "/")
    assert await page.evaluate(OPEN_SOCKET, ws_url) == "closed 1006"
    assert f"origin {other_site} not allowed" in caplog.text
    await page.goto(runner.url + "/")  # the wirehub page, at the server's own origin
    answer = await page.evaluate(OPEN_SOCKET, ws_url)
    assert answer.startswith('message {"op":"welcome"'), answer


async def test_browser_page_on_an_allowed_origin_connects(serve: Serve, page: Any,
                                                          other_site: str) -> None:
    """Chromium: the same foreign page connects once its origin is in allowed_origins."""
    runner = await serve(allowed_origins=(other_site,))
    await page.goto(other_site + "/")
    answer = await page.evaluate(OPEN_SOCKET, runner.ws_url + "/ws")
    assert answer.startswith('message {"op":"welcome"'), answer
