"""Settings: defaults → ringwell.toml → RINGWELL_* environment; errors name the key."""

from __future__ import annotations

import stat

import pytest

from ringwell.errors import ConfigError
from ringwell.settings import ensure_config, load_settings


def test_generated_config_has_a_private_random_secret(tmp_path):
    path = ensure_config(tmp_path)
    first = load_settings(tmp_path, {}).secret_key
    assert len(first) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ensure_config(tmp_path)  # idempotent: the secret stays
    assert load_settings(tmp_path, {}).secret_key == first
    other = tmp_path / "other"
    ensure_config(other)
    assert load_settings(other, {}).secret_key != first


def test_precedence_defaults_file_environment(tmp_path):
    ensure_config(tmp_path)
    assert load_settings(tmp_path, {}).sip_port == 5060
    with (tmp_path / "ringwell.toml").open("a") as f:
        f.write('sip_port = 5070\nrtp_ports = "30000-30999"\nbind = "127.0.0.1"\n')
    s = load_settings(tmp_path, {})
    assert (s.sip_port, s.rtp_ports, s.bind) == (5070, (30000, 30999), "127.0.0.1")
    s = load_settings(tmp_path, {"RINGWELL_SIP_PORT": "5080", "RINGWELL_RTP_PORTS": "20000-29999"})
    assert (s.sip_port, s.rtp_ports) == (5080, (20000, 29999))
    assert s.effective_database_url.startswith("sqlite+aiosqlite:///") and str(tmp_path) in s.effective_database_url
    s = load_settings(tmp_path, {"RINGWELL_DATABASE_URL": "postgresql://u@h/db"})
    assert s.effective_database_url == "postgresql://u@h/db"


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"RINGWELL_SIP_PORT": "seventy"}, "sip_port"),
        ({"RINGWELL_SIP_PORT": "70000"}, "sip_port"),
        ({"RINGWELL_RTP_PORTS": "3000"}, "rtp_ports"),
        ({"RINGWELL_RTP_PORTS": "29999-20000"}, "rtp_ports"),
        ({"RINGWELL_BIND": "not-an-ip"}, "bind"),
        ({"RINGWELL_DATABASE_URL": "mysql://x"}, "database_url"),
        ({"RINGWELL_NO_SUCH_THING": "1"}, "RINGWELL_NO_SUCH_THING"),
        ({"RINGWELL_MIN_EXPIRES": "9000"}, "min_expires"),
        ({"RINGWELL_KEY_EPOCH_DAYS": "0"}, "key_epoch_days"),
        ({"RINGWELL_KEY_EPOCH_DAYS": "31"}, "key_epoch_days"),  # deleted media: unrecoverable within 30 days
    ],
)
def test_bad_values_name_the_key(tmp_path, env, key):
    ensure_config(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path, env)
    assert info.value.key == key


def test_missing_secret_is_an_error_not_a_default(tmp_path):
    (tmp_path / "ringwell.toml").write_text("sip_port = 5060\n")
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path, {})
    assert info.value.key == "secret_key"
