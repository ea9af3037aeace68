"""Configuration: precedence, validation naming the key, `wirehub config`, docs in sync."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields

import pytest

from tests.conftest import ROOT, UNIT
from wirehub.config import ServerConfig, describe, load_config
from wirehub.exceptions import ConfigError


def test_precedence_defaults_file_env_flags(tmp_path):
    """Defaults < TOML file < WIREHUB_* environment < flags."""
    toml = tmp_path / "w.toml"
    toml.write_text('[server]\nport = 9001\nmax_queue = "2MiB"\nlog_format = "json"\n'
                    'allowed_origins = ["https://a.example", "https://b.example"]\n')
    cfg = load_config({}, file=toml, env={})
    assert (cfg.port, cfg.max_queue, cfg.log_format) == (9001, 2 * 1024 * 1024, "json")
    assert cfg.allowed_origins == ("https://a.example", "https://b.example")
    cfg = load_config({}, file=toml, env={"WIREHUB_PORT": "9002"})
    assert cfg.port == 9002 and cfg.max_queue == 2 * 1024 * 1024
    cfg = load_config({"port": "9003", "compression": False}, file=toml,
                      env={"WIREHUB_PORT": "9002"})
    assert cfg.port == 9003 and cfg.compression is False
    assert load_config({}, env={}) == ServerConfig()


@pytest.mark.parametrize(("source", "key"), [
    ({"max_queue": "banana"}, "max_queue"),
    ({"port": "70000"}, "port"),
    ({"log_level": "loud"}, "log_level"),
    ({"compression": "maybe"}, "compression"),
    ({"max_messages_per_second": "0"}, "max_messages_per_second"),
])
def test_invalid_values_name_the_key_and_allowed_values(source, key):
    """A bad value raises ConfigError whose text names the key and what it accepts."""
    with pytest.raises(ConfigError) as info:
        load_config(source, env={})
    assert info.value.key == key and key in str(info.value) and "expected" in str(info.value)


def test_unknown_key_in_file_is_refused(tmp_path):
    """A typo in the TOML file stops start-up instead of being ignored."""
    toml = tmp_path / "w.toml"
    toml.write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="prot"):
        load_config({}, file=toml, env={})


def test_secrets_are_masked():
    """describe() never prints a secret's value."""
    text = describe(load_config({"jwt_secret": "s3cr3t", "api_key": "k3y"}, env={}))
    assert "s3cr3t" not in text and "k3y" not in text and 'jwt_secret = "***"' in text


def test_wirehub_config_command(tmp_path):
    """`wirehub config` prints the effective settings; a bad one exits 2 naming the key."""
    env = {"PATH": "/usr/bin:/bin", "WIREHUB_ADMIN_TOKEN": "tok3n"}
    out = subprocess.run([sys.executable, "-m", "wirehub", "config", "--port", "9100"],
                         cwd=ROOT, capture_output=True, text=True, timeout=UNIT * 2, env=env)
    assert out.returncode == 0 and "port = 9100" in out.stdout
    assert "tok3n" not in out.stdout and 'admin_token = "***"' in out.stdout
    bad = subprocess.run([sys.executable, "-m", "wirehub", "serve", "--max-queue", "x"],
                         cwd=ROOT, capture_output=True, text=True, timeout=UNIT * 2, env=env)
    assert bad.returncode == 2 and "max_queue" in bad.stderr


def test_every_setting_is_documented():
    """docs/operations.md lists every setting (regenerate: wirehub config --reference)."""
    doc = (ROOT / "docs" / "operations.md").read_text()
    for f in fields(ServerConfig):
        if not f.metadata.get("hidden"):
            assert f"`{f.name}`" in doc, f.name
