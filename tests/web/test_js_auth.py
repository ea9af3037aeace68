"""wirehub.js with authentication, in real Chromium: connect frame, then refresh."""

from __future__ import annotations

import time

import jwt

from tests.web.test_page import browser  # noqa: F401 (fixture)

SECRET = "js-test-secret-0123456789abcdef0123"


def token(sub: str, ttl: float) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time() + ttl)}, SECRET, algorithm="HS256")


async def test_js_client_authenticates_in_a_frame_and_refreshes(server_process, browser,  # noqa: F811
                                                                unit):
    """getToken() feeds the connect frame and the refresh the server asks for."""
    server = server_process("--jwt-secret", SECRET, "--refresh-ahead", "2.5",
                            "--stocks-rate", "10")
    ctx = await browser.new_context()
    page = await ctx.new_page()
    page.set_default_timeout(unit * 2 * 1000)
    await page.goto(server.url + "/static/admin.html")  # any page of the server's origin
    tokens = [token("ada", 3), token("ada", 60)]
    result = await page.evaluate("""async ([url, tokens, wait]) => {
        const { WirehubClient } = await import("/static/wirehub.js");
        let calls = 0;
        const opened = [];
        const client = new WirehubClient(url, {
          getToken: async () => tokens[Math.min(calls++, tokens.length - 1)],
          onOpen: (w) => opened.push(w),
        });
        const deadline = Date.now() + wait;
        while (client.state !== "open" && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 20));
        const sub = client.subscribe("news", () => {});
        await sub.ready;
        const published = await client.publish("news", { t: 1 });
        while (calls < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        await new Promise((r) => setTimeout(r, 1500));  // past the first token's expiry
        const pong = await client.ping();
        return { state: client.state, calls, auth: opened[0].auth, reconnects: opened.length,
                 offset: published.offset, pong: typeof pong };
    }""", [server.ws_url + "/ws", tokens, unit * 2 * 1000])
    await ctx.close()
    assert result["auth"] == "required" and result["calls"] >= 2
    assert result["state"] == "open" and result["reconnects"] == 1 and result["offset"] == 1
