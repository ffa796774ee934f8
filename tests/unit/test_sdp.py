"""SDP parsing, encoding and the offer/answer steps of a media-anchoring B2BUA (RFC 4566, 3264),
on offers shaped like the ones SIPp, baresip, linphone and Chrome send."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringwell.sip import sdp as s
from ringwell.sip.errors import RemoteProtocolError


def crlf(text: str) -> bytes:
    return text.strip("\n").replace("\n", "\r\n").encode() + b"\r\n"


SIPP = crlf("""
v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
""")

BARESIP = crlf("""
v=0
o=- 1623406432 2914297218 IN IP4 192.168.1.50
s=-
c=IN IP4 192.168.1.50
t=0 0
a=tool:baresip 1.0.0
m=audio 30000 RTP/AVP 0 8 101
b=AS:64
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtcp-rsize
a=ptime:20
a=sendrecv
a=label:1
a=ssrc:1480531946 cname:f1c2b4a9-6d3e-4a51-9a1c-7d0e3c9b2f11
""")

LINPHONE = crlf("""
v=0
o=alice 3117 2105 IN IP4 192.168.1.60
s=Talk
c=IN IP4 192.168.1.60
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
a=record:off
m=audio 30200 RTP/AVP 0 8 101
a=rtpmap:101 telephone-event/8000
a=rtcp:30201
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
m=video 30400 RTP/AVP 96
a=rtpmap:96 VP8/90000
a=rtcp:30401
a=rtcp-fb:96 nack pli
""")

CHROME = crlf("""
v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
a=extmap-allow-mixed
a=msid-semantic: WMS 3f1c2a
m=audio 54400 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
c=IN IP4 192.168.1.23
a=rtcp:9 IN IP4 0.0.0.0
a=candidate:1467250027 1 udp 2122260223 192.168.1.23 54400 typ host generation 0 network-id 1
a=candidate:3820491474 1 udp 1686052607 203.0.113.7 61002 typ srflx raddr 192.168.1.23 rport 54400 generation 0
a=end-of-candidates
a=ice-ufrag:Gk3W
a=ice-pwd:3ZfqA6FbXGhRCnYb4eZtTp4G
a=ice-options:trickle
a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08
a=setup:actpass
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=sendrecv
a=msid:3f1c2a 9a1b7e
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=fmtp:63 111/111
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:13 CN/8000
a=rtpmap:110 telephone-event/48000
a=rtpmap:126 telephone-event/8000
a=ssrc:2436291043 cname:Yd7PqV1n
""")

HOLD_SENDONLY = crlf("""
v=0
o=user1 53655765 2353687638 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=sendonly
""")

HOLD_RFC2543 = crlf("""
v=0
o=- 1623406432 2914297219 IN IP4 192.168.1.50
s=-
c=IN IP4 0.0.0.0
t=0 0
m=audio 30000 RTP/AVP 0 8 101
a=rtpmap:101 telephone-event/8000
a=ptime:20
""")

IPV6 = crlf("""
v=0
o=bob 2890844730 2890844731 IN IP6 2001:db8::2
s=-
c=IN IP6 2001:db8::2
t=0 0
m=audio 49172 RTP/AVP 8 0
a=rtcp:53020 IN IP6 2001:db8::3
""")

OPUS_ONLY = crlf("""
v=0
o=- 1 1 IN IP4 192.0.2.5
s=-
c=IN IP4 192.0.2.5
t=0 0
m=audio 4000 RTP/AVP 96 101
a=rtpmap:96 opus/48000/2
a=rtpmap:101 telephone-event/48000
""")

SAMPLES = [SIPP, BARESIP, LINPHONE, CHROME, HOLD_SENDONLY, HOLD_RFC2543, IPV6, OPUS_ONLY]
RINGWELL = s.Origin("ringwell", "900", 1, "198.51.100.10")


def answer(*codecs: str) -> s.SessionDescription:
    fmts = " ".join(c.split()[0] for c in codecs)
    maps = "".join(f"a=rtpmap:{c}\n" for c in codecs)
    return s.parse_sdp(f"v=0\no=- 2 2 IN IP4 192.0.2.9\ns=-\nc=IN IP4 192.0.2.9\nt=0 0\n"
                       f"m=audio 7000 RTP/AVP {fmts}\n{maps}".encode())


def test_exports_exist():
    assert all(hasattr(s, name) for name in s.__all__)


@pytest.mark.parametrize("body", SAMPLES)
def test_real_offers_round_trip_byte_for_byte(body):
    parsed = s.parse_sdp(body)
    assert parsed.encode() == body
    assert s.parse_sdp(parsed.encode()) == parsed


@pytest.mark.parametrize("body", SAMPLES)
def test_lf_only_input_is_accepted_and_encoded_with_crlf(body):
    assert s.parse_sdp(body.replace(b"\r\n", b"\n")).encode() == body


def test_unknown_lines_and_attributes_are_kept_in_place():
    body = SIPP.replace(b"t=0 0\r\n", b"t=0 0\r\ny=custom line\r\na=x-vendor:42\r\n")
    parsed = s.parse_sdp(body)
    assert parsed.encode() == body
    assert parsed.attributes("x-vendor") == ["42"]


def test_origin_is_parsed_and_bumped():
    origin = s.parse_sdp(SIPP).origin
    assert origin == s.Origin("user1", "53655765", 2353687637, "127.0.0.1")
    assert origin.bumped().version == 2353687638
    assert origin.bumped().session_id == origin.session_id
    assert s.parse_sdp(IPV6).origin.encode() == "o=bob 2890844730 2890844731 IN IP6 2001:db8::2"


def test_audio_codecs_in_m_line_order_with_static_types_recognised():
    assert s.audio_codecs(s.parse_sdp(SIPP)) == [
        s.Codec(0, "PCMU", 8000), s.Codec(8, "PCMA", 8000), s.Codec(101, "telephone-event", 8000, fmtp="0-15"),
    ]
    # linphone lists 0 and 8 without a=rtpmap (RFC 3551 static types).
    assert [(c.pt, c.name) for c in s.audio_codecs(s.parse_sdp(LINPHONE))] == [
        (0, "PCMU"), (8, "PCMA"), (101, "telephone-event"),
    ]
    chrome = s.audio_codecs(s.parse_sdp(CHROME))
    assert [c.pt for c in chrome] == [111, 63, 9, 0, 8, 13, 110, 126]
    assert chrome[0] == s.Codec(111, "opus", 48000, 2, "minptime=10;useinbandfec=1")


def test_dynamic_type_without_rtpmap_is_skipped_and_no_audio_gives_empty_list():
    body = SIPP.replace(b"RTP/AVP 0 8 101", b"RTP/AVP 0 96 101")
    assert [c.pt for c in s.audio_codecs(s.parse_sdp(body))] == [0, 101]
    assert s.audio_codecs(s.parse_sdp(SIPP.replace(b"m=audio 6000", b"m=audio 0"))) == []


def test_audio_target():
    assert s.audio_target(s.parse_sdp(SIPP)) == ("127.0.0.1", 6000, 6001)
    assert s.audio_target(s.parse_sdp(LINPHONE)) == ("192.168.1.60", 30200, 30201)
    # media-level c= wins; a=rtcp with an address (RFC 3605) gives the port.
    assert s.audio_target(s.parse_sdp(CHROME)) == ("192.168.1.23", 54400, 9)
    assert s.audio_target(s.parse_sdp(IPV6)) == ("2001:db8::2", 49172, 53020)
    override = SIPP.replace(b"a=rtpmap:0", b"c=IN IP4 10.0.0.7\r\na=rtpmap:0")
    assert s.audio_target(s.parse_sdp(override)) == ("10.0.0.7", 6000, 6001)


def test_audio_target_skips_disabled_and_non_audio_streams():
    assert s.audio_target(s.parse_sdp(SIPP.replace(b"m=audio 6000", b"m=audio 0"))) is None
    assert s.audio_target(s.parse_sdp(SIPP.replace(b"m=audio", b"m=video"))) is None
    two = SIPP.replace(b"m=audio 6000", b"m=audio 0 RTP/AVP 0\r\nm=audio 6002")
    assert s.audio_target(s.parse_sdp(two)) == ("127.0.0.1", 6002, 6003)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (SIPP, "sendrecv"),
        (BARESIP, "sendrecv"),
        (HOLD_SENDONLY, "sendonly"),
        (HOLD_RFC2543, "sendonly"),  # RFC 3264 §8.4: 0.0.0.0 = "do not send to me"
        (HOLD_RFC2543 + b"a=recvonly\r\n", "inactive"),
        (HOLD_RFC2543 + b"a=inactive\r\n", "inactive"),
        (SIPP.replace(b"t=0 0\r\n", b"t=0 0\r\na=inactive\r\n"), "inactive"),
        (SIPP.replace(b"t=0 0\r\n", b"t=0 0\r\na=inactive\r\n") + b"a=recvonly\r\n", "recvonly"),
        (SIPP.replace(b"m=audio 6000", b"m=audio 0"), "inactive"),
        (SIPP + b"a=sendonly \r\n", "sendonly"),
        (SIPP + b"a=sendonly:x\r\n", "sendrecv"),
    ],
)
def test_direction(body, expected):
    assert s.direction(s.parse_sdp(body)) == expected


def test_restrict_codecs_keeps_allowed_in_order_and_drops_their_lines():
    offer = s.parse_sdp(CHROME)
    restricted = s.restrict_codecs(offer, frozenset({"pcmu", "PCMA", "telephone-event"}))
    assert restricted.media[0].formats == ("0", "8", "110", "126")
    text = restricted.encode().decode()
    for gone in ("a=rtpmap:111", "a=fmtp:111", "a=rtcp-fb:111", "a=rtpmap:63", "a=fmtp:63", "a=rtpmap:9 ",
                 "a=rtpmap:13", "opus"):
        assert gone not in text
    assert "a=rtpmap:0 PCMU/8000" in text
    assert "a=rtpmap:126 telephone-event/8000" in text
    assert s.parse_sdp(CHROME) == offer  # the input is untouched


def test_restrict_codecs_disables_other_streams_with_port_zero():
    restricted = s.restrict_codecs(s.parse_sdp(LINPHONE), frozenset({"PCMA"}))
    assert [(m.media, m.port, m.formats) for m in restricted.media] == [
        ("audio", 30200, ("8",)), ("video", 0, ("96",)),
    ]
    assert b"m=video 0 RTP/AVP 96\r\na=rtpmap:96 VP8/90000" in restricted.encode()
    assert b"a=rtcp-fb:* trr-int 1000" in restricted.encode()


@pytest.mark.parametrize(
    ("body", "allowed"),
    [
        (OPUS_ONLY, {"PCMU", "PCMA", "telephone-event"}),
        (SIPP, {"telephone-event"}),
        (SIPP.replace(b"m=audio 6000", b"m=audio 0"), {"PCMU"}),
        (SIPP.replace(b"m=audio", b"m=video"), {"PCMU"}),
    ],
)
def test_restrict_codecs_without_common_codec_is_488(body, allowed):
    with pytest.raises(s.NoCommonCodec) as info:
        s.restrict_codecs(s.parse_sdp(body), frozenset(allowed))
    assert info.value.status_hint == 488
    assert isinstance(info.value, s.SdpError)


def test_anchor_hides_ice_and_the_original_address_and_port():
    offer = s.restrict_codecs(s.parse_sdp(CHROME), frozenset({"PCMU", "PCMA", "telephone-event"}))
    anchored = s.anchor(offer, address="198.51.100.10", rtp_port=40000, origin=RINGWELL)
    text = anchored.encode().decode()
    for gone in ("candidate", "ice-", "rtcp-mux", "a=rtcp:", "192.168.1.23", "203.0.113.7", "54400",
                 "0.0.0.0", "4611731400430051336", "127.0.0.1"):
        assert gone not in text
    assert text.startswith("v=0\r\no=ringwell 900 1 IN IP4 198.51.100.10\r\n")
    assert "m=audio 40000 UDP/TLS/RTP/SAVPF 0 8 110 126\r\nc=IN IP4 198.51.100.10\r\n" in text
    assert "a=sendrecv" in text
    assert s.audio_target(s.parse_sdp(anchored.encode())) == ("198.51.100.10", 40000, 40001)


def test_anchor_rewrites_session_connection_and_keeps_the_rest():
    anchored = s.anchor(s.parse_sdp(BARESIP), address="198.51.100.10", rtp_port=40002, origin=RINGWELL.bumped())
    text = anchored.encode().decode()
    assert "192.168.1.50" not in text and "30000" not in text
    assert "o=ringwell 900 2 IN IP4 198.51.100.10" in text
    assert "c=IN IP4 198.51.100.10\r\nt=0 0" in text
    for kept in ("a=ptime:20", "a=sendrecv", "a=fmtp:101 0-15", "a=rtpmap:8 PCMA/8000", "a=label:1", "b=AS:64"):
        assert kept in text


def test_anchor_disables_other_streams_and_drops_their_rtcp():
    anchored = s.anchor(s.parse_sdp(LINPHONE), address="198.51.100.10", rtp_port=40000, origin=RINGWELL)
    assert [m.port for m in anchored.media] == [40000, 0]
    assert b"3020" not in anchored.encode() and b"3040" not in anchored.encode()


def test_anchor_ipv6():
    anchored = s.anchor(s.parse_sdp(SIPP), address="2001:db8::1", rtp_port=40000,
                        origin=s.Origin("ringwell", "1", 1, "2001:db8::1"))
    text = anchored.encode().decode()
    assert "c=IN IP6 2001:db8::1\r\n" in text and "o=ringwell 1 1 IN IP6 2001:db8::1\r\n" in text
    assert "127.0.0.1" not in text
    assert s.audio_target(s.parse_sdp(anchored.encode())) == ("2001:db8::1", 40000, 40001)


def test_anchor_keeps_hold_direction():
    held = s.anchor(s.parse_sdp(HOLD_SENDONLY), address="198.51.100.10", rtp_port=40000, origin=RINGWELL)
    assert held.media[0].attributes("sendonly") == [""]
    assert s.direction(held) == "sendonly"


@pytest.mark.parametrize(("extra", "expected"), [(b"", "sendonly"), (b"a=sendrecv\r\n", "sendonly"),
                                                 (b"a=recvonly\r\n", "inactive"), (b"a=sendonly\r\n", "sendonly")])
def test_anchor_writes_out_the_direction_of_an_rfc2543_hold(extra, expected):
    anchored = s.anchor(s.parse_sdp(HOLD_RFC2543 + extra), address="198.51.100.10", rtp_port=40000,
                        origin=RINGWELL)
    text = anchored.encode().decode()
    assert "0.0.0.0" not in text
    directions = [line for line in text.split() if line in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive")]
    assert directions == [f"a={expected}"]
    assert s.direction(anchored) == expected


def test_anchor_needs_an_active_audio_stream_and_a_valid_port():
    with pytest.raises(s.NoCommonCodec):
        s.anchor(s.parse_sdp(SIPP.replace(b"m=audio 6000", b"m=audio 0")), address="198.51.100.10",
                 rtp_port=40000, origin=RINGWELL)
    with pytest.raises(ValueError, match="port"):
        s.anchor(s.parse_sdp(SIPP), address="198.51.100.10", rtp_port=65535, origin=RINGWELL)


def test_first_codec_and_telephone_event():
    chrome = s.parse_sdp(CHROME)
    assert s.first_codec(chrome) == s.Codec(111, "opus", 48000, 2, "minptime=10;useinbandfec=1")
    assert s.telephone_event(chrome) == s.Codec(110, "telephone-event", 48000)
    narrow = s.restrict_codecs(chrome, frozenset({"PCMA", "telephone-event"}))
    assert s.first_codec(narrow) == s.Codec(8, "PCMA", 8000)
    assert s.telephone_event(narrow) == s.Codec(126, "telephone-event", 8000)
    assert s.telephone_event(s.parse_sdp(SIPP)) == s.Codec(101, "telephone-event", 8000, fmtp="0-15")
    assert s.telephone_event(s.parse_sdp(IPV6)) is None
    assert s.first_codec(answer("101 telephone-event/8000")) is None


def test_answer_matches_offer_by_name_and_rate():
    offer = s.parse_sdp(CHROME)
    assert s.answer_matches_offer(offer, answer("8 PCMA/8000", "101 telephone-event/8000"))
    assert s.answer_matches_offer(offer, answer("97 OPUS/48000/2"))  # other PT, same codec
    assert not s.answer_matches_offer(offer, answer("18 G729/8000"))
    assert not s.answer_matches_offer(offer, answer("96 opus/16000"))
    assert not s.answer_matches_offer(offer, answer("101 telephone-event/8000"))
    assert not s.answer_matches_offer(offer, s.parse_sdp(SIPP.replace(b"m=audio 6000", b"m=audio 0")))


GARBAGE = [
    b"",
    b"hello world",
    b"\xff\xfe" + SIPP,
    SIPP.replace(b"127.0.0.1", b"127.0.0.\xe9"),
    SIPP.replace(b"v=0", b"v=1"),
    b"s=-\r\n" + SIPP,
    SIPP + b"v=0\r\n",
    SIPP.replace(b"o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n", b""),
    SIPP + b"o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n",
    SIPP.replace(b"s=-\r\n", b""),
    SIPP.replace(b"t=0 0\r\n", b""),
    SIPP.replace(b"t=0 0", b"t=now"),
    SIPP.replace(b"2353687637", b"new"),
    SIPP.replace(b"IN IP4 127.0.0.1\r\ns", b"IN IP4\r\ns"),
    SIPP.replace(b"m=audio 6000 RTP/AVP 0 8 101", b"m=audio 6000"),
    SIPP.replace(b"m=audio 6000", b"m=audio 60x0"),
    SIPP.replace(b"m=audio 6000", b"m=audio 70000"),
    SIPP.replace(b"m=audio 6000", b"m=audio 6000/0"),
    SIPP.replace(b"RTP/AVP 0 8 101", b"RTP/AVP 0 8 dtmf"),
    SIPP.replace(b"RTP/AVP 0 8 101", b"RTP/AVP 0 8 300"),
    SIPP.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4"),
    SIPP.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 300.1.1.1"),
    SIPP.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 ::1"),
    SIPP.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP6 2001:db8::zz"),
    SIPP.replace(b"c=IN IP4 127.0.0.1", b"c=ATM NSAP 47.0091"),
    SIPP.replace(b"c=IN IP4 127.0.0.1\r\n", b""),
    SIPP.replace(b"a=rtpmap:8 PCMA/8000", b"a=rtpmap:8 PCMA"),
    SIPP + b"a=rtcp:99999\r\n",
    SIPP + b"not an sdp line\r\n",
    SIPP + b"A=sendonly\r\n",
    SIPP + b"a=x\rb\r\n",
]


@pytest.mark.parametrize("body", GARBAGE)
def test_malformed_sdp_is_a_400(body):
    with pytest.raises(s.SdpError) as info:
        s.parse_sdp(body)
    assert info.value.status_hint == 400
    assert not isinstance(info.value, s.NoCommonCodec)
    assert isinstance(info.value, RemoteProtocolError)


def test_tolerated_oddities():
    # trailing blank lines, a rejected stream without formats or c=, multicast TTL, hostnames
    body = SIPP.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 224.2.1.1/127/3") + b"m=video 0 RTP/AVP\r\n\r\n\r\n"
    parsed = s.parse_sdp(body)
    assert parsed.media[1].port == 0 and parsed.media[1].formats == ()
    assert s.audio_target(parsed) == ("224.2.1.1", 6000, 6001)
    host = s.parse_sdp(SIPP.replace(b"127.0.0.1", b"pbx.example.com"))
    assert host.origin.address == "pbx.example.com"
    assert s.parse_sdp(SIPP.replace(b"m=audio 6000", b"m=audio 6000/2")).media[0].port_count == 2


def outcome(data: bytes) -> s.SessionDescription | None:
    try:
        parsed = s.parse_sdp(data)
    except s.SdpError as exc:
        assert exc.status_hint == 400
        return None
    assert s.parse_sdp(parsed.encode()) == parsed
    return parsed


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_parse_or_raise_sdp_error(data):
    outcome(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SAMPLES), st.randoms(use_true_random=False), st.integers(1, 4))
def test_corrupted_offers_parse_or_raise_sdp_error(body, rnd, edits):
    data = bytearray(body)
    for _ in range(edits):
        at = rnd.randrange(len(data))
        choice = rnd.choice([b"", b" ", b"\n", b"\r", b"/", b":", b"0", b"9", b"=", b"\x00", "é".encode(), b"\xff"])
        data[at : at + rnd.choice([0, 1])] = choice
    outcome(bytes(data))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([line + b"\r\n" for body in SAMPLES for line in body.split(b"\r\n") if line]),
                max_size=30))
def test_shuffled_sample_lines_parse_or_raise_sdp_error(lines):
    outcome(b"v=0\r\n" + b"".join(lines))


@pytest.mark.parametrize("body", SAMPLES)
def test_every_truncation_parses_or_raises_sdp_error(body):
    for end in range(len(body)):
        outcome(body[:end])
