"""wirehub.asgi inside FastAPI, served by a real uvicorn, used by the real client."""

from __future__ import annotations

import re
import subprocess
import sys

import aiohttp
import pytest

import wirehub
from tests.conftest import ROOT, UNIT

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


@pytest.fixture
def uvicorn_server():
    """examples/fastapi_app.py under uvicorn on 127.0.0.1, a free port; stopped by PID."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "examples.fastapi_app:app", "--host", "127.0.0.1",
         "--port", "0", "--log-level", "info"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    port = None
    for line in proc.stdout:  # uvicorn prints the bound address once it is ready
        match = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line)
        if match:
            port = int(match.group(1))
            break
    try:
        assert port is not None, "uvicorn did not start"
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(UNIT * 2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_fastapi_route_publishes_to_hub_subscribers(uvicorn_server, unit):
    """An HTTP route publishes; a wirehub client on the mounted /ws receives it."""
    async with wirehub.connect(f"ws://{uvicorn_server}/ws") as client:
        assert client.client_id
        news = await client.subscribe("news")
        assert await client.send("echo", {"x": 1}) == {"x": 1}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://{uvicorn_server}/notify",
                                 params={"text": "hello"}) as resp:
                assert resp.status == 200
                assert (await resp.json())["offset"] == 1
            async with http.get(f"http://{uvicorn_server}/hello") as resp:
                assert await resp.json() == {"hello": "from FastAPI"}
        msg = await news.get()
        assert msg.data == {"text": "hello"} and msg.sender is None and msg.offset == 1
        other = await client.subscribe("room")
        await client.publish("room", [1, 2])
        assert (await other.get()).data == [1, 2]
        err = None
        try:
            await client.send("nope")
        except wirehub.RequestError as exc:
            err = exc
        assert err is not None and err.code == "unknown_op"
