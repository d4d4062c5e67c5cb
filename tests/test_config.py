from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from node.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_node_toml_loads_with_open_registration() -> None:
    config = load_config(ROOT / "node.toml")
    assert config.accounts.registration == "open"
    assert config.media.max_speakers == 10
    assert config.media.webrtc_fanout == "native"
    assert Path(config.node.data_dir).is_absolute()


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"node": {"prot": 8080}}, "node.prot"),
        ({"nodes": {}}, "nodes"),
        ({"node": {"port": "8080"}}, "node.port"),
        ({"node": {"port": 70000}}, "node.port"),
        ({"node": {"base_url": "example.org"}}, "node.base_url"),
        ({"accounts": {"registration": "sometimes"}}, "accounts.registration"),
        ({"media": {"max_speakers": 0}}, "media.max_speakers"),
        ({"media": {"ogg_page_ms": 150}}, "media.ogg_page_ms"),
        ({"media": {"ogg_page_ms": 0}}, "media.ogg_page_ms"),
        ({"media": {"workers": -1}}, "media.workers"),
        ({"media": {"workers": 65}}, "media.workers"),
        ({"media": {"workers": "two"}}, "media.workers"),
        ({"node": {"event_loop": "trio"}}, "node.event_loop"),
        ({"node": {"http_parser": "llhttp"}}, "node.http_parser"),
        ({"media": {"max_speakers": True}}, "media.max_speakers"),
        ({"media": {"udp_port_min": 40000}}, "media.udp_port_min"),
        ({"media": {"udp_port_min": 50000, "udp_port_max": 40000}}, "media.udp_port_max"),
        ({"media": {"ice_servers": ["http://x"]}}, "media.ice_servers[0]"),
        ({"media": {"ice_servers": "stun:x:3478"}}, "media.ice_servers"),
        ({"federation": {"authorized_fetch": "yes"}}, "federation.authorized_fetch"),
        ({"media": {"webrtc_fanout": "c"}}, "media.webrtc_fanout"),
        ({"node": {"description": 3}}, "node.description"),
        ({"node": {"description": "x" * 501}}, "node.description"),
    ],
)
def test_bad_settings_name_the_key(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert info.value.key == key
    assert key in str(info.value)


def test_values_are_typed_and_frozen() -> None:
    config = parse_config(
        {"media": {"ice_servers": ["stun:127.0.0.1:3478"], "speaker_timeout_s": 2}}
    )
    assert config.media.ice_servers == ("stun:127.0.0.1:3478",)
    assert config.media.speaker_timeout_s == 2.0
    with pytest.raises(AttributeError):
        config.media.max_speakers = 3  # type: ignore[misc]


def test_node_refuses_to_start_with_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text("[media]\nmax_speaker = 5\n")
    result = subprocess.run(
        [sys.executable, "-m", "node", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "media.max_speaker" in result.stderr


def test_create_user_admin_from_stdin(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('[node]\ndata_dir = "data"\n')
    result = subprocess.run(
        [sys.executable, "-m", "node", "--config", str(path), "create-user", "root", "--admin"],
        input="a long password\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "created admin root" in result.stdout
    assert (tmp_path / "data" / "parley.db").exists()
    again = subprocess.run(
        [sys.executable, "-m", "node", "--config", str(path), "create-user", "root"],
        input="a long password\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert again.returncode == 1
    assert "taken" in again.stderr


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("HTTPS://Rooms.Example:443/", "https://rooms.example"),
        ("http://rooms.example:80", "http://rooms.example"),
        ("https://rooms.example:8443", "https://rooms.example:8443"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_base_url_is_written_one_way(given: str, canonical: str) -> None:
    """Handles (``alice@host[:port]``) and signing keys' hosts compare as strings: the
    port appears only when it is not the scheme's default (FEDERATION.md, "Terms")."""
    assert parse_config({"node": {"base_url": given}}).node.base_url == canonical
