"""The admin view: token-protected stats JSON, the page, and `wirehub top`."""

from __future__ import annotations

import subprocess
import sys

import aiohttp
import pytest

from tests.conftest import ROOT, UNIT
from tests.rawclient import RawClient
from wirehub import App
from wirehub.config import ServerConfig
from wirehub.transport.runner import ServerRunner

TOKEN = "admin-secret-42"


@pytest.fixture
async def runner():
    async with ServerRunner(App("admin-test"), ServerConfig(port=0, admin_token=TOKEN)) as r:
        yield r


async def test_stats_need_the_token_and_list_nodes_channels_connections(runner, unit):
    """/admin/api/stats answers 401 without the token and lists what the node holds."""
    c = await RawClient.connect(runner.ws_url + "/ws", unit)
    await c.ok("subscribe", channel="watched")
    async with aiohttp.ClientSession() as s:
        async with s.get(runner.url + "/admin/api/stats") as resp:
            assert resp.status == 401
        async with s.get(runner.url + "/admin/api/stats",
                         headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            stats = await resp.json()
        async with s.get(runner.url + "/admin") as resp:
            assert resp.status == 200 and "wirehub admin" in await resp.text()
    assert [n["node"] for n in stats["nodes"]] == [runner.node.name]
    assert stats["nodes"][0]["connections"] == 1
    assert stats["channels"] == [{"channel": "watched", "subscribers": 1}]
    assert [x["client"] for x in stats["connections"]] == [c.client_id]
    await c.close()


async def test_admin_is_off_without_a_token(unit):
    """No admin token configured: /admin does not exist."""
    async with ServerRunner(App("x"), ServerConfig(port=0)) as runner, \
            aiohttp.ClientSession() as s, s.get(runner.url + "/admin") as resp:
        assert resp.status == 404


def test_top_prints_a_snapshot(server_process):
    """`wirehub top URL --token T --once` prints the nodes table; a wrong token fails."""
    server = server_process("--admin-token", TOKEN, "--stocks-rate", "10")
    out = subprocess.run([sys.executable, "-m", "wirehub", "top", server.url, "--token", TOKEN,
                          "--once"], cwd=ROOT, capture_output=True, text=True, timeout=UNIT * 2)
    assert out.returncode == 0, out.stderr
    assert "NODE" in out.stdout and "CHANNEL" in out.stdout and "CLIENT" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "wirehub", "top", server.url, "--token", "no",
                          "--once"], cwd=ROOT, capture_output=True, text=True, timeout=UNIT * 2)
    assert bad.returncode != 0 and "refused" in bad.stderr
