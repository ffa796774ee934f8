"""The web phone's settings: HTTPS on the HTTP port, credential lifetime, STUN/TURN lists."""

from __future__ import annotations

import pytest

from ringwell.errors import ConfigError
from ringwell.settings import ensure_config, load_settings


def test_ice_server_lists_come_from_toml_lists_or_comma_separated_environment(tmp_path):
    ensure_config(tmp_path)
    s = load_settings(tmp_path, {})
    assert (s.http_tls, s.webphone_credential_hours, s.webrtc_stun_servers, s.webrtc_turn_servers) == (
        False, 12, (), ())
    assert s.portal_url.startswith("http://")
    with (tmp_path / "ringwell.toml").open("a") as f:
        f.write('webrtc_stun_servers = ["stun:a.example:3478", "stun:b.example"]\nhttp_tls = true\n')
    s = load_settings(tmp_path, {})
    assert s.webrtc_stun_servers == ("stun:a.example:3478", "stun:b.example") and s.http_tls
    assert s.portal_url.startswith("https://")
    s = load_settings(tmp_path, {"RINGWELL_WEBRTC_TURN_SERVERS": "turn:t.example:3478?transport=udp, turns:t.example",
                                 "RINGWELL_WEBRTC_TURN_USERNAME": "u", "RINGWELL_WEBRTC_TURN_PASSWORD": "p"})
    assert s.webrtc_turn_servers == ("turn:t.example:3478?transport=udp", "turns:t.example")
    assert "webrtc_turn_password" not in repr(s)  # a secret: never in logs


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"RINGWELL_WEBRTC_STUN_SERVERS": "turn:x.example"}, "webrtc_stun_servers"),
        ({"RINGWELL_WEBRTC_STUN_SERVERS": "stun:a b"}, "webrtc_stun_servers"),
        ({"RINGWELL_WEBRTC_TURN_SERVERS": "turn:t.example"}, "webrtc_turn_username"),
        ({"RINGWELL_WEBPHONE_CREDENTIAL_HOURS": "0"}, "webphone_credential_hours"),
        ({"RINGWELL_HTTP_TLS": "maybe"}, "http_tls"),
    ],
)
def test_bad_values_name_the_key(tmp_path, env, key):
    ensure_config(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path, env)
    assert info.value.key == key
