"""`wirehub serve` security flags and environment variables, in-process and as a subprocess."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from wirehub.cli import build_parser
from wirehub.cli import serve as serve_cli
from wirehub.config import ServerConfig

from .conftest import SECRET, Spawn, bearer, make_token, run_serve


def parsed_config(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> ServerConfig:
    """The ServerConfig `wirehub serve ARGV` would run with (the server is not started)."""
    seen: list[ServerConfig] = []
    monkeypatch.setattr(serve_cli, "run_app", lambda app, config: seen.append(config) or 0)
    args = build_parser().parse_args(["serve", "--stocks-rate", "1", *argv])
    assert args.func(args) == 0
    return seen[0]


def test_security_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without flags serve uses ServerConfig's documented security defaults."""
    for name in ("WIREHUB_JWT_SECRET", "WIREHUB_JWT_PUBLIC_KEY"):
        monkeypatch.delenv(name, raising=False)
    config = parsed_config([], monkeypatch)
    d = ServerConfig()
    assert (config.jwt_secret, config.jwt_public_key, config.allowed_origins) == (None,) * 3
    assert config.allow_query_token is False
    assert (config.certfile, config.keyfile) == (None, None)
    for name in ("connect_timeout", "max_connections", "max_connections_per_ip",
                 "max_messages_per_second", "max_bytes_per_second", "max_subscriptions",
                 "max_json_depth", "handshake_timeout", "max_message_size", "refresh_ahead",
                 "rate_limit_strikes"):
        assert getattr(config, name) == getattr(d, name), name
    assert (d.connect_timeout, d.max_connections, d.max_connections_per_ip) == (10, 10_000, 1_000)
    assert (d.max_messages_per_second, d.max_bytes_per_second) == (200, 2 * 1024 * 1024)
    assert (d.max_subscriptions, d.max_json_depth, d.handshake_timeout) == (1_000, 32, 10)


def test_every_security_flag_reaches_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each security flag sets its ServerConfig field."""
    monkeypatch.delenv("WIREHUB_JWT_PUBLIC_KEY", raising=False)
    config = parsed_config([
        "--jwt-secret", "s3cret", "--allow-query-token", "--connect-timeout", "3",
        "--allowed-origins", "https://a.example, https://b.example", "--certfile", "c.pem",
        "--keyfile", "k.pem", "--max-connections", "7", "--max-connections-per-ip", "3",
        "--max-messages-per-second", "9", "--max-bytes-per-second", "64KiB",
        "--max-subscriptions", "5", "--max-json-depth", "4", "--handshake-timeout", "2",
        "--max-message-size", "1KiB",
    ], monkeypatch)
    assert config.jwt_secret == "s3cret" and config.allow_query_token
    assert config.connect_timeout == 3
    assert config.allowed_origins == ("https://a.example", "https://b.example")
    assert (config.certfile, config.keyfile) == ("c.pem", "k.pem")
    assert (config.max_connections, config.max_connections_per_ip) == (7, 3)
    assert (config.max_messages_per_second, config.max_bytes_per_second) == (9, 64 * 1024)
    assert (config.max_subscriptions, config.max_json_depth) == (5, 4)
    assert (config.handshake_timeout, config.max_message_size) == (2, 1024)
    star = parsed_config(["--allowed-origins", "*"], monkeypatch)
    assert star.allowed_origins == ("*",)


def test_env_vars_set_the_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """WIREHUB_JWT_SECRET and WIREHUB_JWT_PUBLIC_KEY are the defaults of the two key flags."""
    monkeypatch.setenv("WIREHUB_JWT_SECRET", "from-env")
    monkeypatch.setenv("WIREHUB_JWT_PUBLIC_KEY", "/keys/pub.pem")
    config = parsed_config([], monkeypatch)
    assert (config.jwt_secret, config.jwt_public_key) == ("from-env", "/keys/pub.pem")
    config = parsed_config(["--jwt-secret", "flag-wins"], monkeypatch)
    assert config.jwt_secret == "flag-wins"


# -- subprocesses ----------------------------------------------------------------------------


async def welcome_of(url: str, unit: float, **kwargs: Any) -> dict[str, Any]:
    async with websockets.connect(url, open_timeout=unit, **kwargs) as ws:
        return json.loads(await ws.recv())


async def test_anonymous_serve_warns_at_start(spawn: Spawn, unit: float) -> None:
    """Without a key, serve logs a warning that every client is anonymous."""
    server = await spawn("--stocks-rate", "5")
    line = await server.wait_for_line(r"WARNING.*no authentication configured", unit)
    assert "--jwt-secret" in line


async def test_jwt_secret_from_env(spawn: Spawn, unit: float) -> None:
    """WIREHUB_JWT_SECRET turns authentication on: 401 for bad tokens, user for good ones."""
    server = await spawn("--stocks-rate", "5", env={"WIREHUB_JWT_SECRET": SECRET})
    url = server.url.replace("http", "ws") + "/ws"
    assert (await welcome_of(url, unit))["auth"] == "required"
    welcome = await welcome_of(url, unit, additional_headers=bearer(make_token("erin")))
    assert (welcome["auth"], welcome["user"]) == ("authenticated", "erin")
    with pytest.raises(websockets.InvalidStatus) as refused:
        await welcome_of(url, unit, additional_headers=bearer(make_token(key="x" * 64)))
    assert refused.value.response.status_code == 401
    assert not any("no authentication configured" in line for line in server.lines)


async def test_jwt_public_key_flag(spawn: Spawn, unit: float, tmp_path: Path) -> None:
    """--jwt-public-key FILE verifies RS256 tokens signed by the matching private key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "pub.pem"
    pem.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    server = await spawn("--stocks-rate", "5", "--jwt-public-key", str(pem))
    welcome = await welcome_of(server.url.replace("http", "ws") + "/ws", unit,
                               additional_headers=bearer(make_token("rsa", key=key,
                                                                    alg="RS256")))
    assert welcome["user"] == "rsa"


@pytest.mark.parametrize(("args", "env", "says"), [
    (["--jwt-secret", "s", "--jwt-public-key", "pub.pem"], {}, "jwt_public_key"),
    (["--jwt-public-key", "/nonexistent/pub.pem"], {}, "readable PEM"),
    ([], {"WIREHUB_JWT_PUBLIC_KEY": "/nonexistent/pub.pem"}, "readable PEM"),
    (["--keyfile", "/nonexistent/key.pem"], {}, "certfile"),
    (["--certfile", "/nonexistent/cert.pem"], {}, "certfile"),
], ids=["secret-and-key", "missing-key", "missing-key-env", "keyfile-alone", "missing-cert"])
async def test_bad_security_settings_exit_2(unit: float, args: list[str], env: dict[str, str],
                                            says: str, tmp_path: Path) -> None:
    """Contradictory or unreadable key/certificate settings: a one-line error and exit 2."""
    if "pub.pem" in args:
        (tmp_path / "pub.pem").write_text("x")
        args = [str(tmp_path / a) if a == "pub.pem" else a for a in args]
    code, out = await run_serve("--stocks-rate", "5", *args, timeout=unit * 2, env=env)
    assert code == 2, out
    assert says in out
    assert "Traceback" not in out


async def test_security_flags_end_to_end(spawn: Spawn, unit: float) -> None:
    """Flags take effect in a real `wirehub serve`: query token, per-IP cap, origins, limits."""
    server = await spawn(
        "--stocks-rate", "5", "--jwt-secret", SECRET, "--allow-query-token",
        "--allowed-origins", "https://app.example", "--max-connections-per-ip", "1",
        "--max-subscriptions", "1", "--max-json-depth", "2")
    url = server.url.replace("http", "ws") + "/ws"
    with pytest.raises(websockets.InvalidStatus) as refused:
        await welcome_of(url, unit, origin="https://evil.example")
    assert refused.value.response.status_code == 403
    async with websockets.connect(f"{url}?token={make_token('quinn')}", open_timeout=unit,
                                  origin="https://app.example") as ws:
        welcome = json.loads(await ws.recv())
        assert (welcome["auth"], welcome["user"]) == ("authenticated", "quinn")
        with pytest.raises(websockets.InvalidStatus) as refused:
            await welcome_of(url, unit)
        assert refused.value.response.status_code == 429
        await ws.send('{"op":"subscribe","id":1,"channel":"a"}')
        assert json.loads(await ws.recv())["op"] == "reply"
        await ws.send('{"op":"subscribe","id":2,"channel":"b"}')
        assert json.loads(await ws.recv())["code"] == "too_large"
        await ws.send('{"op":"publish","id":3,"channel":"a","data":[[[1]]]}')
        frame = json.loads(await ws.recv())
        assert (frame["id"], frame["code"]) == (3, "bad_request")
        assert "2" in frame["message"]
