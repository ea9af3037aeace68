"""The browser page (src/wirehub/web/static/) in real headless Chromium against `wirehub serve`.

Chromium is Debian's /usr/bin/chromium driven by the Python ``playwright``
package (scripts/browser_deps.sh installs both; ``playwright install`` is never
run). Each test saves screenshots into test-artifacts/. With
WIREHUB_DOCS_SCREENSHOT=1, the two-user test also writes docs/screenshot.png.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

HAS_DIGIT = re.compile(r"\d")
PRICE = re.compile(r"^[▲▼ ]*\d+\.\d{2}$")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _browser_ready() -> bool:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return False
    return os.access(CHROMIUM, os.X_OK)


def _install_browser() -> str | None:
    """Run scripts/browser_deps.sh once; the reason it failed, or None."""
    try:
        done = subprocess.run(["bash", str(ROOT / "scripts" / "browser_deps.sh")],
                              capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if done.returncode == 0 else (done.stderr or done.stdout).strip()[-500:]


if not _browser_ready():
    _why = _install_browser()
    if not _browser_ready():
        pytest.skip(f"browser tests need {CHROMIUM} and the Python playwright package; "
                    f"scripts/browser_deps.sh could not install them: {_why}",
                    allow_module_level=True)

from playwright.async_api import Browser, Page, async_playwright, expect  # noqa: E402


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture
def web(server_process):
    """A real `wirehub serve --port 0` subprocess: the default app (echo, chat, stocks)."""
    return server_process()


@pytest.fixture
async def browser(unit) -> AsyncIterator[Browser]:
    """Headless Debian Chromium; playwright gives it a fresh temporary profile."""
    expect.set_options(timeout=unit * 2 * 1000)
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                     headless=True, timeout=unit * 6 * 1000)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def proxy(web) -> AsyncIterator[CuttableProxy]:
    """A TCP proxy in front of the server whose connections the test can cut."""
    p = CuttableProxy(web.port)
    await p.start()
    try:
        yield p
    finally:
        await p.close()


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to the server; `cut()` drops every connection like a
    network failure (RST, the page sees 1006) and `block()` refuses new ones until
    `unblock()`, so a page stays disconnected for as long as the test wants."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.blocked = False
        self.port = 0
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.blocked:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._pairs.discard(pair)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def block(self) -> None:
        self.blocked = True

    def unblock(self) -> None:
        self.blocked = False

    def cut(self) -> None:
        for down, up in list(self._pairs):
            down.transport.abort()
            up.transport.abort()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)


# -- helpers -------------------------------------------------------------------------------
async def open_page(browser: Browser, url: str, unit: float) -> Page:
    """A page in its own browser context (own storage: another user), connected."""
    ctx = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await ctx.new_page()
    page.set_default_timeout(unit * 2 * 1000)
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))  # type: ignore[attr-defined]
    await page.goto(url)
    await expect(page.get_by_test_id("conn")).to_have_attribute("data-state", "open")
    return page


async def set_nick(page: Page, nick: str) -> None:
    await page.get_by_test_id("nick-input").fill(nick)
    await page.get_by_test_id("nick-set").click()
    await expect(page.get_by_test_id("nick-current")).to_have_text(nick)


async def join_room(page: Page, room: str) -> None:
    await page.get_by_test_id("room-input").fill(room)
    await page.get_by_test_id("room-join").click()
    await expect(page.get_by_test_id("room-title")).to_have_text(f"#{room}")


async def switch_room(page: Page, room: str) -> None:
    await page.locator(f"[data-testid=room][data-room='{room}'] .room-name").click()
    await expect(page.get_by_test_id("room-title")).to_have_text(f"#{room}")


async def say(page: Page, text: str) -> None:
    """Type a message and send it with Enter; wait until the page shows it back."""
    await page.get_by_test_id("message-input").fill(text)
    await page.get_by_test_id("message-input").press("Enter")
    await expect(page.get_by_test_id("message-input")).to_have_value("")
    await expect(page.get_by_test_id("message-text").last).to_have_text(text)


def texts(page: Page):
    return page.get_by_test_id("messages").get_by_test_id("message-text")


async def shoot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with contextlib.suppress(Exception):
        await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def fresh_room() -> str:
    return f"room-{secrets.token_hex(3)}"


async def drop_connection(page: Page, proxy: CuttableProxy, how: str) -> None:
    """Take `page` off the server until `proxy.unblock()`.

    "network": the proxy cuts the TCP connection (what the page sees when the
    server or the network drops it: close 1006). "close4002": the socket is
    closed with FORCE_RECONNECT (4002), a retryable code; once the server can
    drop a client itself (e.g. an admin endpoint), call that here instead.
    """
    proxy.block()
    if how == "network":
        proxy.cut()
    else:
        await page.evaluate("window.wirehubClient._ws.close(4002, 'test')")
    await expect(page.get_by_test_id("conn")).not_to_have_attribute("data-state", "open")


# -- tests -------------------------------------------------------------------------------------
async def test_two_users_see_each_other_and_each_others_messages(web, browser, unit):
    """Two nicknamed users in one room see each other in presence, typing and messages."""
    room = fresh_room()
    ada = await open_page(browser, web.url, unit)
    bob = await open_page(browser, web.url, unit)
    try:
        for page, nick in ((ada, "ada"), (bob, "bob")):
            await set_nick(page, nick)
            await join_room(page, room)
        for page in (ada, bob):
            people = page.get_by_test_id("presence").get_by_test_id("presence-item")
            await expect(people).to_have_count(2)
            await expect(people).to_have_text(["ada (you)", "bob"] if page is ada
                                              else ["ada", "bob (you)"])
        await say(ada, "hello bob")
        await expect(texts(bob)).to_have_text(["hello bob"])
        await bob.get_by_test_id("message-input").fill("hi ada, how")
        await expect(ada.get_by_test_id("typing")).to_have_text("bob is typing…")
        await bob.get_by_test_id("message-input").fill("hi ada, how are you?")
        await bob.get_by_test_id("message-input").press("Enter")
        for page in (ada, bob):
            await expect(texts(page)).to_have_text(["hello bob", "hi ada, how are you?"])
            await expect(page.get_by_test_id("messages").get_by_test_id("message-nick")
                         ).to_have_text(["ada", "bob"])
        await expect(ada.get_by_test_id("typing")).to_have_text("")
        # the room list: both are also in the default room, and switching works
        await switch_room(ada, "lobby")
        await expect(texts(ada)).to_have_count(0)
        await switch_room(ada, room)
        await expect(texts(ada)).to_have_count(2)
        # live stocks on the same page, for the screenshot
        await expect(ada.locator("[data-testid=stock-row][data-ticks='0']")).to_have_count(0)
        assert ada.errors == [] and bob.errors == []  # type: ignore[attr-defined]
    finally:
        await shoot(ada, "chat_two_users_ada")
        await shoot(bob, "chat_two_users_bob")
    if os.environ.get("WIREHUB_DOCS_SCREENSHOT"):
        await ada.screenshot(path=str(ROOT / "docs" / "screenshot.png"))


async def test_history_shows_last_50_on_join(web, browser, unit):
    """A newcomer to a room with 55 messages sees the last 50, oldest first."""
    room = fresh_room()
    ada = await open_page(browser, web.url, unit)
    try:
        await join_room(ada, room)
        await ada.evaluate("""async (channel) => {
            for (let i = 1; i <= 55; i++) {
                await window.wirehubClient.publish(channel, {text: `m-${i}`});
            }
        }""", f"chat:{room}")
        await expect(texts(ada)).to_have_count(55)
        cy = await open_page(browser, web.url, unit)
        await join_room(cy, room)
        await expect(texts(cy)).to_have_text([f"m-{i}" for i in range(6, 56)])
    finally:
        await shoot(ada, "history_ada")


@pytest.mark.parametrize("how", ["network", "close4002"])
async def test_reconnect_recovers_missed_messages(web, browser, proxy, unit, how):
    """A page cut off while others post reconnects and shows what it missed, in order, once."""
    room = fresh_room()
    # ada goes through the cuttable proxy; short backoff so she is back quickly
    ada = await open_page(browser, f"{proxy.url}/?backoff_base=0.2&backoff_cap=1", unit)
    bob = await open_page(browser, web.url, unit)
    try:
        for page, nick in ((ada, "ada"), (bob, "bob")):
            await set_nick(page, nick)
            await join_room(page, room)
        await say(bob, "before")
        await expect(texts(ada)).to_have_text(["before"])
        old_id = await ada.get_by_test_id("client-id").text_content()

        await drop_connection(ada, proxy, how)
        missed = [f"missed-{i}" for i in range(1, 6)]
        for text in missed:
            await say(bob, text)
        await expect(bob.get_by_test_id("presence-item")).to_have_count(1)  # ada has left
        await asyncio.sleep(unit / 5)  # a few failed reconnection attempts
        await expect(ada.get_by_test_id("conn")).not_to_have_attribute("data-state", "open")
        assert int(await ada.get_by_test_id("conn-attempts").text_content() or 0) >= 1
        proxy.unblock()

        await expect(ada.get_by_test_id("conn")).to_have_attribute(
            "data-state", "open", timeout=unit * 4 * 1000)
        await expect(ada.get_by_test_id("conn-reconnects")).to_have_text("1")
        assert await ada.get_by_test_id("client-id").text_content() != old_id
        await expect(texts(ada)).to_have_text(["before", *missed])
        await say(bob, "after")
        await expect(texts(ada)).to_have_text(["before", *missed, "after"])
        stats = await ada.evaluate("window.wirehubApp.chat.stats")
        assert stats == {"recovered": 2, "reloaded": 0}  # the room and the lobby, via `since`
        for page in (ada, bob):  # presence is right again: the old connection is gone
            await expect(page.get_by_test_id("presence-item")).to_have_count(2)
        offsets = await ada.get_by_test_id("messages").get_by_test_id("message").evaluate_all(
            "els => els.map(e => Number(e.dataset.offset))")
        assert offsets == sorted(set(offsets)) and len(offsets) == 7
        assert ada.errors == [] and bob.errors == []  # type: ignore[attr-defined]
    finally:
        await shoot(ada, f"reconnect_{how}_ada")
        await shoot(bob, f"reconnect_{how}_bob")


async def test_final_close_code_stops_reconnecting(web, browser, unit):
    """After a final close code (4500) the page says closed for good and does not retry."""
    page = await open_page(browser, f"{web.url}/?backoff_base=0.1&backoff_cap=0.2", unit)
    try:
        await page.evaluate("window.wirehubClient._ws.close(4500, 'test')")
        await expect(page.get_by_test_id("conn")).to_have_attribute("data-state", "closed")
        await expect(page.get_by_test_id("conn-detail")).to_contain_text("closed for good")
        await asyncio.sleep(unit / 5)
        await expect(page.get_by_test_id("conn")).to_have_attribute("data-state", "closed")
        await expect(page.get_by_test_id("conn-reconnects")).to_have_text("0")
        await expect(page.get_by_test_id("conn-attempts")).to_have_text("0")
    finally:
        await shoot(page, "final_close")


async def test_stocks_update_only_watched_symbols(web, browser, unit):
    """Only watched symbols are shown and received, capped at 10/s; a removed one stops."""
    page = await open_page(browser, web.url, unit)
    rows = page.get_by_test_id("stock-row")
    received = "window.wirehubClient.received"
    try:
        await expect(rows).to_have_count(4)
        assert await rows.evaluate_all("els => els.map(e => e.dataset.symbol)") == [
            "AAPL", "MSFT", "GOOG", "AMZN"]
        for symbol in ("AAPL", "MSFT", "GOOG", "AMZN"):
            await expect(page.locator(f"[data-testid=stock-row][data-symbol='{symbol}']"
                                      )).not_to_have_attribute("data-ticks", "0")
        await expect(page.locator("#symbol-options option")).not_to_have_count(0)
        # up/down colouring and the sparkline follow the ticks
        await expect(page.locator(".price.up, .price.down").first).to_be_visible()
        await expect(page.locator("[data-testid=sparkline] polyline").first
                     ).to_have_attribute("points", HAS_DIGIT)
        # nothing else reaches the page, and max_rate caps each symbol at 10/s
        before = await page.evaluate(received)
        await asyncio.sleep(2.0)
        after = await page.evaluate(received)
        assert set(after) == {"stocks:AAPL", "stocks:MSFT", "stocks:GOOG", "stocks:AMZN"}
        assert 0 < after["stocks:AAPL"] - before["stocks:AAPL"] <= 2.0 * 10 + 3
        await expect(page.locator("[data-testid=stock-row][data-symbol='TSLA']")).to_have_count(0)

        await page.get_by_test_id("symbol-input").fill("tsla")
        await page.get_by_test_id("symbol-add").click()
        tsla = page.locator("[data-testid=stock-row][data-symbol='TSLA']")
        await expect(tsla).to_have_count(1)
        await expect(tsla).not_to_have_attribute("data-ticks", "0")
        await expect(tsla.get_by_test_id("stock-price")).to_have_text(PRICE)

        await page.locator("[data-testid=stock-row][data-symbol='MSFT']"
                           ).get_by_test_id("stock-remove").click()
        await expect(rows).to_have_count(4)
        await page.evaluate("window.wirehubClient.ping()")  # the unsubscribe is done
        stopped = await page.evaluate(received)
        await asyncio.sleep(1.5)
        later = await page.evaluate(received)
        assert later["stocks:MSFT"] == stopped["stocks:MSFT"]
        assert later["stocks:AAPL"] > stopped["stocks:AAPL"]
        assert later["stocks:TSLA"] > stopped["stocks:TSLA"]

        await page.reload()  # the watchlist is remembered
        await expect(page.get_by_test_id("conn")).to_have_attribute("data-state", "open")
        assert await rows.evaluate_all("els => els.map(e => e.dataset.symbol)") == [
            "AAPL", "GOOG", "AMZN", "TSLA"]
        await page.get_by_test_id("symbol-input").fill("NOPE")
        await page.get_by_test_id("symbol-add").click()
        await expect(page.get_by_test_id("stocks-error")).to_have_text("Unknown symbol NOPE")
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        await shoot(page, "stocks")


async def test_markup_in_chat_is_shown_as_text(web, browser, unit):
    """HTML in messages and nicknames is shown literally and never runs."""
    room = fresh_room()
    evil = ['<script>window.__xss=1</script>', '<img src=x onerror="window.__xss=1">']
    evil_nick = "<b onclick=x>eve</b>"
    eve = await open_page(browser, web.url, unit)
    bob = await open_page(browser, web.url, unit)
    try:
        await set_nick(eve, evil_nick)
        for page in (eve, bob):
            await join_room(page, room)
        for text in evil:
            await say(eve, text)
        await eve.get_by_test_id("message-input").fill("typing <i>")
        for page in (eve, bob):
            await expect(texts(page)).to_have_text(evil)
            await expect(page.get_by_test_id("messages").get_by_test_id("message-nick")
                         ).to_have_text([evil_nick, evil_nick])
            await expect(page.get_by_test_id("presence-item").filter(has_text="eve")
                         ).to_contain_text(evil_nick)
        await expect(bob.get_by_test_id("typing")).to_have_text(f"{evil_nick} is typing…")
        await asyncio.sleep(unit / 10)  # time for an injected <img> to fail and run onerror
        for page in (eve, bob):
            assert await page.evaluate("typeof window.__xss") == "undefined"
            assert await page.locator("#messages img, #messages script, #messages b").count() == 0
        # room names are checked before they reach the page or the server
        await bob.get_by_test_id("room-input").fill("<b>x</b>")
        await bob.get_by_test_id("room-join").click()
        await expect(bob.get_by_test_id("chat-error")).to_contain_text("room name")
        await expect(bob.get_by_test_id("room")).to_have_count(2)
    finally:
        await shoot(eve, "xss_eve")
        await shoot(bob, "xss_bob")

