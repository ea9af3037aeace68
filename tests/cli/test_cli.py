"""The CLI as subprocesses against a server subprocess: publish, subscribe, connect, trace."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import IO

import pytest

from tests.conftest import ServerProcess, start_server_process


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "wirehub", *args]


def run(*args: str, unit: float, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(*args), input=stdin, capture_output=True, text=True,
                          timeout=unit * 4)


class Lines:
    """Lines of a subprocess stream, read by a thread, awaited with a timeout."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def rest(self, timeout: float) -> list[str]:
        """Every line up to the end of the stream (the process must be exiting)."""
        while (line := self._queue.get(timeout=timeout)) is not None:
            self.seen.append(line)
        return self.seen

    def expect(self, pattern: str, timeout: float) -> str:
        """The first next line matching ``pattern``; fail after ``timeout`` seconds."""
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no line matching {pattern!r} within {timeout} s; got {self.seen}")
            if line is None:
                pytest.fail(f"stream ended without {pattern!r}; got {self.seen}")
            self.seen.append(line)
            if re.search(pattern, line):
                return line


def interact(args: list[str], line: str, until: str, unit: float) -> tuple[int, list[str]]:
    """Send one line, keep stdin open until a line matches ``until``, then send EOF."""
    proc = subprocess.Popen(cli(*args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdin is not None
        lines = Lines(proc.stdout)  # type: ignore[arg-type]
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
        lines.expect(until, unit * 2)
        proc.stdin.close()
        return proc.wait(unit), lines.seen
    finally:
        proc.kill()


@pytest.fixture(scope="module")
def hub() -> Iterator[ServerProcess]:
    """One ``wirehub serve`` subprocess on a free port, shared by this module's tests."""
    sp = start_server_process()
    yield sp
    if sp.proc.poll() is None:
        sp.proc.kill()
        sp.proc.wait()


# -- publish / subscribe --------------------------------------------------------------------

def test_publish_and_subscribe_round_trip(hub, unit):
    """subscribe --count 2 prints the two published messages as JSON lines, then exits 0."""
    sub = subprocess.Popen(cli("subscribe", hub.ws_url, "news", "--count", "2"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        Lines(sub.stderr).expect(r"^subscribed to news", unit * 2)  # type: ignore[arg-type]
        first = run("publish", hub.ws_url, "news", '{"n": 1}', unit=unit)
        second = run("publish", hub.ws_url + "/ws", "news", '"two"', "-s", "wirehub.v1.msgpack",
                     unit=unit)
        assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
        offsets = [json.loads(r.stdout)["offset"] for r in (first, second)]
        out, _ = sub.communicate(timeout=unit * 2)
    finally:
        sub.kill()
    assert sub.returncode == 0
    messages = [json.loads(line) for line in out.splitlines()]
    assert [m["data"] for m in messages] == [{"n": 1}, "two"]
    assert [m["offset"] for m in messages] == offsets == [offsets[0], offsets[0] + 1]
    assert set(messages[0]) == {"channel", "data", "offset", "epoch", "from", "ts"}
    assert messages[0]["channel"] == "news" and messages[0]["from"]


def test_subscribe_ends_quietly_when_its_reader_goes_away(hub, unit):
    """Like ``| head -1``: stdout closed by the reader, the next write ends it with 141."""
    sub = subprocess.Popen(cli("subscribe", hub.ws_url, "piped"), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        assert sub.stdout is not None and sub.stderr is not None
        errors = Lines(sub.stderr)
        errors.expect(r"^subscribed to piped", unit * 2)
        assert run("publish", hub.ws_url, "piped", "1", unit=unit).returncode == 0
        assert json.loads(sub.stdout.readline())["data"] == 1
        sub.stdout.close()
        assert run("publish", hub.ws_url, "piped", "2", unit=unit).returncode == 0
        assert sub.wait(unit * 2) == 141
    finally:
        sub.kill()
    assert not any("Traceback" in line for line in errors.rest(unit))


def test_publish_prints_the_offset_reply(hub, unit):
    """publish prints exactly one JSON object: {"offset": N}."""
    result = run("publish", f"http://127.0.0.1:{hub.port}", "solo", "[1, 2, 3]", unit=unit)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"offset": 1}  # the first message of "solo"


def test_publish_refused_by_the_server_exits_1(hub, unit):
    """A bad channel name: the server's error code on stderr, exit status 1."""
    result = run("publish", hub.ws_url, "no spaces allowed", "1", unit=unit)
    assert result.returncode == 1
    assert "bad_request" in result.stderr and result.stdout == ""


def test_publish_rejects_invalid_json_argument(hub, unit):
    """Data that is not JSON is a usage error (exit 2) before connecting."""
    result = run("publish", hub.ws_url, "news", "{not json", unit=unit)
    assert result.returncode == 2 and "not JSON" in result.stderr


def test_publish_to_nothing_listening_exits_1(unused_tcp_port, unit):
    """No server: a short message on stderr, exit 1, no traceback."""
    result = run("publish", f"ws://127.0.0.1:{unused_tcp_port}", "news", "1", unit=unit)
    assert result.returncode == 1
    assert "cannot connect" in result.stderr and "Traceback" not in result.stderr


# -- connect ------------------------------------------------------------------------------

def test_connect_pipes_lines_to_echo(hub, unit):
    """Each stdin line goes out as a message and comes back from /echo; EOF closes 1000."""
    result = run("connect", hub.ws_url + "/echo", stdin="hello\nsecond line\n", unit=unit)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    received = [line.split(" < ", 1)[1] for line in lines if " < " in line]
    sent = [line.split(" > ", 1)[1] for line in lines if " > " in line]
    assert received == sent == ["hello", "second line"]
    assert re.match(r"\d\d:\d\d:\d\d\.\d{3} < hello$",
                    next(line for line in lines if " < " in line))
    assert "closed by us: code 1000" in lines[-1]


def test_connect_to_ws_shows_the_welcome(hub, unit):
    """/ws with a subprotocol: the welcome arrives and a request gets its reply."""
    request = json.dumps({"op": "send", "id": 1, "type": "echo", "data": "hi"})
    status, lines = interact(["connect", hub.ws_url + "/ws", "-s", "wirehub.v1.json"],
                             request, r' < \{"op":"reply"', unit)
    assert status == 0
    received = [json.loads(line.split(" < ", 1)[1]) for line in lines if " < " in line]
    assert received[0]["op"] == "welcome"
    assert received[1] == {"op": "reply", "id": 1, "result": "hi"}
    assert "subprotocol wirehub.v1.json" in lines[0]


def test_connect_prints_the_servers_close_code(server_process, unit):
    """When the server closes (1009, message too big) the code is shown, exit status 1."""
    small = server_process("--max-message-size", "1KiB")
    status, lines = interact(["connect", small.ws_url + "/ws"], "x" * 2000,
                             r"\* closed by", unit)
    assert status == 1
    assert "closed by server: code 1009" in lines[-1]


def test_connect_refused_upgrade(hub, unit):
    """An upgrade answered with 400 prints the status and the body, exit status 1."""
    result = run("connect", hub.ws_url + "/ws", "-s", "nope", stdin="", unit=unit)
    assert result.returncode == 1
    assert "HTTP 400" in result.stderr and "unsupported subprotocol" in result.stderr


# -- connect --trace ----------------------------------------------------------------------

def test_trace_shows_the_handshake_and_frames(hub, unit):
    """--trace prints upgrade headers and frames: opcode, FIN, MASK, length, payload, close code."""
    result = run("connect", "--trace", hub.ws_url + "/echo", "-H", "X-Trace-Test: yes",
                 stdin="hello\n", unit=unit)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "> GET /echo HTTP/1.1" in out
    assert re.search(r"^> Sec-WebSocket-Key: \S+$", out, re.M)
    assert "> X-Trace-Test: yes" in out
    assert "< HTTP/1.1 101 Switching Protocols" in out
    assert re.search(r"^< Sec-WebSocket-Accept: \S+$", out, re.M)
    assert re.search(r' > text +fin=1 mask=1 len=5 "hello"$', out, re.M)
    assert re.search(r' < text +fin=1 len=5 "hello"$', out, re.M)
    assert re.search(r" > close +fin=1 mask=1 len=2 code=1000 .*$", out, re.M)
    assert re.search(r" < close +fin=1 len=2 code=1000 .*$", out, re.M)
    assert "connection closed: code 1000" in out


def test_trace_shows_continuation_frames(hub, unit):
    """--fragment sends text FIN=0 then continuation frames; /echo answers in one frame."""
    line = "abcdefghij" * 3
    result = run("connect", "--trace", "--fragment", "8", hub.ws_url + "/echo",
                 stdin=line + "\n", unit=unit)
    assert result.returncode == 0, result.stderr
    out_frames = re.findall(r" > (text|continuation) +fin=(\d) mask=1 len=(\d+)",
                            result.stdout)
    assert out_frames == [("text", "0", "8"), ("continuation", "0", "8"),
                          ("continuation", "0", "8"), ("continuation", "1", "6")]
    assert re.search(rf' < text +fin=1 len=30 "{line}"$', result.stdout, re.M)


def test_trace_shows_a_large_message_with_a_preview(hub, unit):
    """A 100 000-byte message: its true length, and a shortened payload preview."""
    result = run("connect", "--trace", hub.ws_url + "/echo", stdin="y" * 100_000 + "\n",
                 unit=unit)
    assert result.returncode == 0, result.stderr
    received = re.search(r" < text +fin=1 len=100000 (.*)$", result.stdout, re.M)
    assert received is not None
    assert len(received.group(1)) < 200
    assert "(+99940 chars)" in received.group(1)


def test_trace_shows_server_pings_and_automatic_pongs(server_process, unit):
    """The server's pings appear, each followed by the pong the protocol sends by itself."""
    hub = server_process("--ping-interval", "0.2")
    proc = subprocess.Popen(cli("connect", "--trace", hub.ws_url + "/ws"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        lines = Lines(proc.stdout)  # type: ignore[arg-type]
        lines.expect(r"^< HTTP/1.1 101", unit)
        lines.expect(r' < text +fin=1 len=\d+ "\{\\"op\\":\\"welcome\\"', unit)
        lines.expect(r" < ping +fin=1 len=0$", unit)
        lines.expect(r" > pong +fin=1 mask=1 len=0$", unit)
        assert proc.stdin is not None
        proc.stdin.close()  # EOF: close with 1000
        lines.expect(r" < close +fin=1 len=2 code=1000", unit)
        assert proc.wait(unit) == 0
    finally:
        proc.kill()


def test_trace_shows_a_refused_upgrade(hub, unit):
    """A refused upgrade: the 400 status line, its headers and body, exit status 1."""
    result = run("connect", "--trace", hub.ws_url + "/ws", "-s", "bogus", stdin="", unit=unit)
    assert result.returncode == 1
    assert "> Sec-WebSocket-Protocol: bogus" in result.stdout
    assert "< HTTP/1.1 400 Bad Request" in result.stdout
    assert "unsupported subprotocol bogus" in result.stdout


def test_trace_shows_the_servers_close_frame(server_process, unit):
    """A close started by the server (1009) shows its code, then our echo of it."""
    small = server_process("--max-message-size", "1KiB")
    status, lines = interact(["connect", "--trace", small.ws_url + "/ws"], "z" * 2000,
                             r"\* connection closed", unit)
    assert status == 1
    out = "\n".join(lines)
    assert re.search(r" < close +fin=1 len=\d+ code=1009 \(message too big\)", out)
    assert re.search(r" > close +fin=1 mask=1 len=\d+ code=1009", out)
    assert "connection closed: code 1009" in lines[-1]


class _Writes:
    """Stands in for sys.stdout: records each write call."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def write(self, text: str) -> int:
        self.calls.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def test_say_writes_a_line_and_its_newline_in_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unbuffered (PYTHONUNBUFFERED), print() writes text and newline apart, and two
    --workers children sharing stdout interleaved their banners mid-line (a CI failure)."""
    from wirehub.cli.serve import say

    out = _Writes()
    monkeypatch.setattr(sys, "stdout", out)
    say("wirehub listening on http://127.0.0.1:1 (node n)\n  ws://127.0.0.1:1/ws")
    assert out.calls == ["wirehub listening on http://127.0.0.1:1 (node n)\n  ws://127.0.0.1:1/ws\n"]
