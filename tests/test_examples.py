"""Every example in examples/ runs as its docstring says."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT, UNIT, start_server_process


def test_echo_server_and_client_example():
    """examples/echo_server.py serves; examples/client.py connects, sends and logs replies."""
    server = start_server_process("examples/echo_server.py:app")
    try:
        out = subprocess.run(
            [sys.executable, "examples/client.py", f"{server.ws_url}/ws"],
            cwd=ROOT, capture_output=True, text=True, timeout=UNIT * 4,
        )
        assert out.returncode == 0, out.stderr
        log = out.stderr
        assert "connected as" in log and "echo reply: {'hello': 'wirehub'}" in log
        assert "state CONNECTING -> OPEN" in log
        assert [line.split("received on demo offset ")[1].split(":")[0]
                for line in log.splitlines() if "received on demo" in line] == ["1", "2", "3"]
    finally:
        assert server.stop() == 0


def test_echo_server_example_runs_standalone():
    """`python examples/echo_server.py --port 0` serves until SIGTERM, then exits 0."""
    proc = subprocess.Popen([sys.executable, "examples/echo_server.py", "--port", "0"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "wirehub listening on http://127.0.0.1:" in line
    finally:
        proc.terminate()
        assert proc.wait(UNIT * 2) == 0


async def test_multi_type_server_example(unit, server_process):
    """examples/multi_type_server.py answers greet, add, time and announce; errors are clear."""
    import wirehub

    server = server_process("examples/multi_type_server.py:app")
    async with wirehub.connect(server.ws_url + "/ws") as client:
        assert await client.send("greet", {"name": "Ada"}) == {"greeting": "hello, Ada!"}
        assert await client.send("add", {"a": 2, "b": 3}) == {"sum": 5}
        assert (await client.send("time"))["ms"] > 0
        news = await client.subscribe("announcements")
        await client.send("announce", "hi all")
        msg = await news.get()
        assert msg.data == {"by": client.client_id, "text": "hi all"} and msg.sender is None
        try:
            await client.send("add", {"a": "x"})
        except wirehub.RequestError as exc:
            assert exc.code == "bad_request" and "data.a" in exc.message
        else:
            raise AssertionError("add with bad data did not fail")
