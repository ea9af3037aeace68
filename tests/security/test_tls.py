"""TLS: certfile/keyfile serve https and wss; checked with a throwaway trustme CA."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import aiohttp
import pytest
import trustme
import websockets

from wirehub.exceptions import ConfigError

from .conftest import SECRET, Serve, Spawn, bearer, make_token


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def cert_files(ca: trustme.CA, tmp_path: Path) -> tuple[str, str]:
    """A server certificate for 127.0.0.1 and localhost: (chain file, key file)."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    chain, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    for pem in cert.cert_chain_pems:
        pem.write_to_path(str(chain), append=True)
    cert.private_key_pem.write_to_path(str(key))
    return str(chain), str(key)


@pytest.fixture
def client_ssl(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


async def test_wss_and_https(serve: Serve, unit: float, cert_files: tuple[str, str],
                             client_ssl: ssl.SSLContext) -> None:
    """With certfile/keyfile: wss:// carries protocol v1 and /healthz answers over https."""
    certfile, keyfile = cert_files
    runner = await serve(certfile=certfile, keyfile=keyfile)
    assert runner.url.startswith("https://") and runner.ws_url.startswith("wss://")
    for host in ("127.0.0.1", "localhost"):
        url = f"wss://{host}:{runner.port}/ws"
        async with websockets.connect(url, ssl=client_ssl, open_timeout=unit,
                                      ping_interval=None) as ws:
            assert json.loads(await ws.recv())["op"] == "welcome"
            await ws.send('{"op":"ping","id":"tls"}')
            assert json.loads(await ws.recv()) == {"op": "pong", "id": "tls"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=unit)) as http:
        async with http.get(runner.url + "/healthz", ssl=client_ssl) as resp:
            assert resp.status == 200
            assert (await resp.json())["status"] == "ok"


async def test_untrusted_and_plaintext_clients_fail(serve: Serve, unit: float,
                                                    cert_files: tuple[str, str],
                                                    client_ssl: ssl.SSLContext) -> None:
    """A client without the CA fails verification; plain ws:// gets no WebSocket; server goes on."""
    certfile, keyfile = cert_files
    runner = await serve(certfile=certfile, keyfile=keyfile)
    with pytest.raises(ssl.SSLCertVerificationError):
        await websockets.connect(runner.ws_url + "/ws", ssl=ssl.create_default_context(),
                                 open_timeout=unit)
    with pytest.raises((websockets.InvalidMessage, websockets.InvalidStatus, OSError)):
        await websockets.connect(f"ws://127.0.0.1:{runner.port}/ws", open_timeout=unit)
    async with websockets.connect(runner.ws_url + "/ws", ssl=client_ssl,
                                  open_timeout=unit) as ws:
        assert json.loads(await ws.recv())["op"] == "welcome"


async def test_tls_with_auth_and_origin(serve: Serve, unit: float, cert_files: tuple[str, str],
                                        client_ssl: ssl.SSLContext) -> None:
    """Over wss the same-host Origin is https://host:port; the Bearer token authenticates."""
    certfile, keyfile = cert_files
    runner = await serve(certfile=certfile, keyfile=keyfile, jwt_secret=SECRET)
    async with websockets.connect(runner.ws_url + "/ws", ssl=client_ssl, open_timeout=unit,
                                  origin=f"https://127.0.0.1:{runner.port}",
                                  additional_headers=bearer(make_token("tess"))) as ws:
        welcome = json.loads(await ws.recv())
        assert (welcome["auth"], welcome["user"]) == ("authenticated", "tess")
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(runner.ws_url + "/ws", ssl=client_ssl, open_timeout=unit,
                                 origin="https://evil.example")
    assert refused.value.response.status_code == 403


async def test_bad_tls_settings_are_config_errors(serve: Serve, tmp_path: Path,
                                                  cert_files: tuple[str, str]) -> None:
    """A keyfile without certfile, a missing file or a non-PEM file is a ConfigError."""
    certfile, keyfile = cert_files
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    for settings in ({"keyfile": keyfile}, {"certfile": str(tmp_path / "missing.pem")},
                     {"certfile": str(junk)}, {"certfile": certfile, "keyfile": str(junk)}):
        with pytest.raises(ConfigError):
            await serve(**settings)


async def test_serve_certfile_keyfile_flags(spawn: Spawn, unit: float,
                                            cert_files: tuple[str, str],
                                            client_ssl: ssl.SSLContext) -> None:
    """`wirehub serve --certfile --keyfile` listens on https and serves wss."""
    certfile, keyfile = cert_files
    server = await spawn("--certfile", certfile, "--keyfile", keyfile, "--stocks-rate", "5")
    assert server.url.startswith("https://127.0.0.1:")
    async with websockets.connect(f"wss://localhost:{server.port}/ws", ssl=client_ssl,
                                  open_timeout=unit) as ws:
        assert json.loads(await ws.recv())["op"] == "welcome"
