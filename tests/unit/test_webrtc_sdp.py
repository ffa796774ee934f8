"""SDP between a browser's WebRTC description and the plain one (``ringwell.webrtc.sdp``), pure."""

from __future__ import annotations

import pytest

from ringwell.sip.sdp import Codec, NoCommonCodec, Origin, audio_codecs, direction, parse_sdp, telephone_event
from ringwell.webrtc.sdp import (
    as_answer,
    choose_codec,
    direction_of,
    free_payload_type,
    is_webrtc,
    only_formats,
    plain_description,
    setup_of,
    with_direction,
    with_event,
    with_public_address,
)

# The shape of a Chromium offer (audio only, as JsSIP makes it), shortened.
CHROME_OFFER = "\r\n".join([
    "v=0", "o=- 4611731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0",
    "a=extmap-allow-mixed", "a=msid-semantic: WMS stream",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
    "c=IN IP4 0.0.0.0", "a=rtcp:9 IN IP4 0.0.0.0",
    "a=candidate:1 1 udp 2113937151 192.168.1.20 51000 typ host generation 0",
    "a=ice-ufrag:abcd", "a=ice-pwd:0123456789abcdefghijklmn", "a=ice-options:trickle",
    "a=fingerprint:sha-256 11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD"
    ":EE:FF:00",
    "a=setup:actpass", "a=mid:0", "a=sendrecv", "a=rtcp-mux",
    "a=rtpmap:111 opus/48000/2", "a=rtcp-fb:111 transport-cc", "a=fmtp:111 minptime=10;useinbandfec=1",
    "a=rtpmap:63 red/48000/2", "a=fmtp:63 111/111", "a=rtpmap:9 G722/8000", "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000", "a=rtpmap:13 CN/8000", "a=rtpmap:110 telephone-event/48000",
    "a=rtpmap:126 telephone-event/8000", "a=ssrc:1001 cname:x", "",
]).encode()

PLAIN = b"v=0\r\no=bob 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\n" \
        b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
ORIGIN = Origin("ringwell", "7", 1, "127.0.0.1")


def opus_only() -> bytes:
    return CHROME_OFFER.replace(b"111 63 9 0 8 13 110 126", b"111 110")


def test_a_browser_description_is_told_from_a_plain_one() -> None:
    assert is_webrtc(parse_sdp(CHROME_OFFER))
    assert not is_webrtc(parse_sdp(PLAIN))


def test_g711_is_chosen_when_offered_with_its_telephone_event() -> None:
    choice = choose_codec(parse_sdp(CHROME_OFFER))
    assert (choice.codec.name, choice.codec.pt, choice.passthrough) == ("PCMU", 0, True)
    assert choice.event == Codec(126, "telephone-event", 8000)


def test_opus_is_chosen_when_nothing_else_is_offered() -> None:
    choice = choose_codec(parse_sdp(opus_only()))
    assert (choice.codec.name, choice.codec.rate, choice.passthrough) == ("opus", 48000, False)
    assert choice.event is not None and choice.event.rate == 48000


def test_an_offer_without_g711_or_opus_is_not_acceptable() -> None:
    offer = parse_sdp(CHROME_OFFER.replace(b"111 63 9 0 8 13 110 126", b"9 13"))
    with pytest.raises(NoCommonCodec) as caught:
        choose_codec(offer)
    assert caught.value.status_hint == 488


def test_the_plain_description_names_the_codecs_event_and_direction() -> None:
    sdp = plain_description(origin=ORIGIN, address="127.0.0.1", port=20000, codecs=["PCMA", "PCMU"], event_pt=101,
                            stream_direction="sendonly")
    assert sdp.media[0].proto == "RTP/AVP" and sdp.media[0].port == 20000
    assert [c.name for c in audio_codecs(sdp)] == ["PCMA", "PCMU", "telephone-event"]
    assert telephone_event(sdp) == Codec(101, "telephone-event", 8000, None, "0-16")
    assert direction(sdp) == "sendonly"
    assert not is_webrtc(sdp)
    with pytest.raises(ValueError, match=r"G\.711"):
        plain_description(origin=ORIGIN, address="127.0.0.1", port=20000, codecs=["opus"], event_pt=None,
                          stream_direction="sendrecv")


def test_telephone_event_is_added_once_after_the_format_attributes() -> None:
    answer = only_formats(parse_sdp(CHROME_OFFER), [0])
    assert [c.name for c in audio_codecs(answer)] == ["PCMU"]
    added = with_event(answer, Codec(126, "telephone-event", 8000))
    assert [c.pt for c in audio_codecs(added)] == [0, 126]
    assert with_event(added, Codec(126, "telephone-event", 8000)) == added
    lines = [line.value for line in added.media[0].lines]
    assert lines.index("rtpmap:126 telephone-event/8000") == lines.index("rtpmap:0 PCMU/8000") + 1


def test_direction_is_replaced_not_added() -> None:
    held = with_direction(parse_sdp(CHROME_OFFER), "sendonly")
    assert direction_of(held) == "sendonly"
    assert [line.value for line in held.media[0].lines].count("sendonly") == 1
    assert "sendrecv" not in [line.value for line in held.media[0].lines]


def test_a_public_address_is_announced_beside_the_host_candidate() -> None:
    sdp = with_public_address(parse_sdp(CHROME_OFFER), "203.0.113.7")
    candidates = sdp.media[0].attributes("candidate")
    assert candidates[0].endswith("192.168.1.20 51000 typ host generation 0")
    assert " 203.0.113.7 51000 typ srflx raddr 192.168.1.20 rport 51000" in candidates[1]


def test_our_offer_becomes_an_answer_with_the_dtls_role_we_took() -> None:
    offer = parse_sdp(CHROME_OFFER)
    browser_answer = parse_sdp(CHROME_OFFER.replace(b"111 63 9 0 8 13 110 126", b"0 126")
                               .replace(b"a=setup:actpass", b"a=setup:active"))
    answer = as_answer(offer, browser_answer, "recvonly")
    assert [c.pt for c in audio_codecs(answer)] == [0, 126]
    assert setup_of(answer) == "passive"
    assert direction_of(answer) == "recvonly"
    assert answer.media[0].attributes("fingerprint") == offer.media[0].attributes("fingerprint")


def test_a_free_payload_type_avoids_the_ones_in_use() -> None:
    sdp = parse_sdp(CHROME_OFFER)
    assert free_payload_type(sdp) == 101
    assert free_payload_type(sdp, taken=[101]) == 96


def test_a_browser_description_is_not_on_hold_because_of_its_unspecified_address() -> None:
    offer = parse_sdp(CHROME_OFFER)
    assert offer.connection is None and offer.media[0].connection == "0.0.0.0"
    assert direction(offer) == "sendonly"  # what an RFC 2543 reading would say
    assert direction_of(offer) == "sendrecv"
    assert direction_of(with_direction(offer, "sendonly")) == "sendonly"
