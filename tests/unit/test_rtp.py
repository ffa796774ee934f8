"""RTP/RTCP parsing and RFC 3550 reception statistics (ringwell.media.rtp), without I/O."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ringwell.media
from ringwell.errors import RingwellError
from ringwell.media import CodecError, MediaError, PortExhausted
from ringwell.media.rtp import RtcpReport, RtpHeader, StreamStats, is_rtcp, parse_rtcp, parse_rtp

# -- exports and errors ---------------------------------------------------------------------------


def test_exports_are_importable():
    for name in ringwell.media.__all__:
        assert hasattr(ringwell.media, name), name


def test_error_tree():
    assert issubclass(MediaError, RingwellError)
    assert issubclass(PortExhausted, MediaError)
    assert issubclass(CodecError, MediaError)


# -- RTP header -----------------------------------------------------------------------------------

# A PCMU packet: V=2, M=1, PT=0, seq 0x1234, ts 0x89ABCDEF, SSRC 0xDEADBEEF, 160 bytes of payload.
PCMU = bytes.fromhex("80 80 1234 89abcdef deadbeef") + b"\xff" * 160


def test_parse_rtp_fixed_header():
    h = parse_rtp(PCMU)
    assert h == RtpHeader(
        version=2,
        padding=False,
        extension=False,
        csrc_count=0,
        marker=True,
        payload_type=0,
        sequence=0x1234,
        timestamp=0x89ABCDEF,
        ssrc=0xDEADBEEF,
    )
    assert h.payload_offset == 12
    assert h.serialize() == PCMU[:12]


def test_parse_rtp_telephone_event_with_csrcs_extension_and_padding():
    # RFC 4733 event (PT 101) with 2 CSRCs, a one-word extension and 3 octets of padding.
    head = RtpHeader(2, True, True, 2, False, 101, 7, 160, 42, csrcs=(1, 2)).serialize()
    ext = bytes.fromhex("bede 0001 10ff0000")
    event = bytes.fromhex("05 0a 00a0")  # digit 5, volume 10, duration 160
    data = head + ext + event + b"\x00\x00\x03"
    h = parse_rtp(data)
    assert (h.payload_type, h.csrc_count, h.csrcs, h.extension, h.padding) == (101, 2, (1, 2), True, True)
    assert h.payload_offset == 12 + 8 + 8
    assert h.padding_length == 3
    assert data[h.payload_offset : len(data) - h.padding_length] == event


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "RTP packet too short: 0 bytes, need at least 12"),
        (PCMU[:11], "RTP packet too short: 11 bytes, need at least 12"),
        (b"\x40" + PCMU[1:], "RTP version must be 2, got 1"),
        (b"\x00" + PCMU[1:12], "RTP version must be 2, got 0"),
        (b"\x83" + PCMU[1:12] + b"\x00" * 8, "RTP packet too short for 3 CSRCs: 20 bytes"),
        (b"\x90" + PCMU[1:12] + b"\xbe\xde", "RTP header extension truncated"),
        (
            b"\x90" + PCMU[1:12] + bytes.fromhex("bede0002") + b"\x00" * 4,
            "RTP header extension of 2 words runs past the end of the packet",
        ),
        (b"\xa0" + PCMU[1:12] + b"\x01\x00", "RTP padding length 0 is invalid for a 14-byte packet"),
        (b"\xa0" + PCMU[1:12] + b"\x01\x05", "RTP padding length 5 is invalid for a 14-byte packet"),
    ],
)
def test_parse_rtp_rejects_malformed(data, message):
    with pytest.raises(ValueError) as info:
        parse_rtp(data)
    assert str(info.value) == message


def test_is_rtcp_demultiplexes_rfc5761():
    assert not is_rtcp(PCMU)
    assert is_rtcp(bytes.fromhex("81c90007"))
    assert not is_rtcp(b"\x80")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_parsers_return_or_raise_value_error(data):
    for parse in (parse_rtp, parse_rtcp):
        with contextlib.suppress(ValueError):
            parse(data)


# -- StreamStats (RFC 3550 A.1, A.3, A.8) --------------------------------------------------------


def feed(stats: StreamStats, sequences, *, start_ts=0, step=160, interval=0.02, size=172):
    """Packets whose timestamps follow their sequence number and that arrive perfectly paced."""
    for i, seq in enumerate(sequences):
        stats.update(seq, start_ts + step * i, 10.0 + interval * i, size)


def test_in_order_stream():
    s = StreamStats()
    feed(s, range(1000, 1050))
    assert (s.packets, s.bytes, s.expected, s.lost, s.max_gap) == (50, 50 * 172, 50, 0, 0)
    assert s.loss_fraction == 0.0
    assert s.jitter == pytest.approx(0.0, abs=1e-6)


def test_loss_counts_expected_minus_received_and_the_longest_gap():
    s = StreamStats()
    feed(s, [1, 2, 3, 6, 7, 9, 10])  # 4, 5 and 8 lost
    assert (s.expected, s.received, s.lost, s.max_gap) == (10, 7, 3, 2)
    assert s.loss_fraction == pytest.approx(0.3)
    assert s.to_dict() == {
        "packets": 7,
        "bytes": 7 * 172,
        "expected": 10,
        "lost": 3,
        "loss_fraction": 0.3,
        "jitter_ms": s.to_dict()["jitter_ms"],
        "max_gap": 2,
    }


def test_reordered_packets_are_not_lost():
    s = StreamStats()
    feed(s, [1, 2, 4, 3, 5, 7, 6, 8])
    assert (s.expected, s.received, s.lost, s.extended_max) == (8, 8, 0, 8)


def test_duplicates_make_loss_negative_but_the_fraction_stays_zero():
    s = StreamStats()
    feed(s, [1, 2, 2, 3])
    assert (s.expected, s.received, s.lost, s.loss_fraction) == (3, 4, -1, 0.0)


def test_sequence_wrap_counts_a_cycle():
    s = StreamStats()
    feed(s, [65533, 65534, 65535, 0, 1, 2])
    assert s.cycles == 65536
    assert s.extended_max == 65536 + 2
    assert (s.expected, s.lost) == (6, 0)


def test_loss_across_the_wrap():
    s = StreamStats()
    feed(s, [65534, 65535, 2, 3])  # 0 and 1 lost
    assert (s.expected, s.received, s.lost, s.max_gap) == (6, 4, 2, 2)


def test_reordering_across_the_wrap_is_not_a_new_cycle():
    s = StreamStats()
    feed(s, [65534, 0, 65535, 1])
    assert (s.cycles, s.expected, s.lost) == (65536, 4, 0)


def test_huge_jump_is_ignored_until_confirmed_by_the_next_packet():
    s = StreamStats()
    feed(s, [1, 2, 3])
    s.update(20000, 0, 11.0, 172)  # one stray packet: invalid (RFC 3550 A.1 bad_seq)
    assert (s.expected, s.received, s.lost) == (3, 3, 0)
    s.update(4, 480, 11.02, 172)
    assert (s.expected, s.received, s.lost) == (4, 4, 0)
    # Two sequential packets after a jump: the source restarted; counting starts again there.
    s.update(30000, 0, 12.0, 172)
    s.update(30001, 160, 12.02, 172)
    assert (s.base_seq, s.expected, s.received, s.lost) == (30001, 1, 1, 0)
    assert s.packets == 7


def test_jitter_matches_a_hand_computed_rfc3550_example():
    # RFC 3550 A.8: D = (Rj - Ri) - (Sj - Si) in timestamp units, J += (|D| - J) / 16.
    # 20 ms packets (160 samples at 8 kHz); the third arrives 5 ms late, the fourth on time.
    s = StreamStats()
    s.update(100, 1000, 0.000, 172)
    s.update(101, 1160, 0.020, 172)  # 20 ms = 160 ts: D = 0 -> J = 0
    assert s.jitter == pytest.approx(0.0)
    s.update(102, 1320, 0.045, 172)  # 25 ms = 200 ts: D = 200 - 160 = 40 -> J = 40 / 16 = 2.5
    assert s.jitter == pytest.approx(2.5)
    s.update(103, 1480, 0.060, 172)  # 15 ms = 120 ts: |D| = 40 -> J = 2.5 + 37.5 / 16 = 4.84375
    assert s.jitter == pytest.approx(4.84375)
    assert s.jitter_ms == pytest.approx(4.84375 / 8)


def test_jitter_is_not_disturbed_by_a_timestamp_wrap():
    s = StreamStats()
    start = 2**32 - 320
    feed(s, range(10), start_ts=start)  # timestamps wrap after the second packet
    s2 = StreamStats()
    feed(s2, range(10), start_ts=0)
    assert s.jitter == pytest.approx(s2.jitter, abs=1e-6)
    assert s.jitter == pytest.approx(0.0, abs=1e-6)


def test_jitter_uses_the_clock_rate():
    s = StreamStats()
    s.update(1, 0, 0.0, 100, clock_rate=48000)
    s.update(2, 960, 0.030, 100, clock_rate=48000)  # 10 ms late: D = 480 -> J = 30 ts = 0.625 ms
    assert s.jitter == pytest.approx(30.0)
    assert s.jitter_ms == pytest.approx(0.625)


def test_reset_starts_a_new_stream():
    s = StreamStats()
    feed(s, [1, 5])
    s.reset()
    assert (s.packets, s.expected, s.lost, s.jitter, s.max_gap) == (0, 0, 0, 0.0, 0)
    feed(s, [9000, 9001])
    assert (s.packets, s.expected, s.lost) == (2, 2, 0)


# -- RTCP -----------------------------------------------------------------------------------------


def report_block(ssrc, fraction, cumulative, highest, jitter, lsr, dlsr):
    return (
        struct.pack("!IB", ssrc, fraction)
        + cumulative.to_bytes(3, "big", signed=True)
        + struct.pack("!IIII", highest, jitter, lsr, dlsr)
    )


def rtcp(packet_type, count, body, padding=b""):
    data = body + padding
    assert len(data) % 4 == 0
    b0 = 0x80 | (0x20 if padding else 0) | count
    return struct.pack("!BBH", b0, packet_type, len(data) // 4) + data


SR = rtcp(
    200,
    1,
    struct.pack("!I", 0x11111111)
    + struct.pack("!IIIII", 0xE1A2B3C4, 0x80000000, 123456, 50, 8000)  # sender info
    + report_block(0x22222222, 64, -2, 0x0001FFFF, 37, 0xAABBCCDD, 65536),
)
SDES = rtcp(202, 1, struct.pack("!I", 0x11111111) + b"\x01\x05alice" + b"\x00")  # CNAME, end, pad
RR = rtcp(
    201,
    2,
    struct.pack("!I", 0x33333333)
    + report_block(0x44444444, 0, 0, 1000, 8, 0, 0)
    + report_block(0x55555555, 255, 0x7FFFFF, 70000, 400, 1, 2),
)
BYE = rtcp(203, 1, struct.pack("!I", 0x11111111))
APP = rtcp(204, 0, struct.pack("!I", 0x11111111) + b"NAME" + b"data")


def test_hand_built_packets_have_the_expected_sizes():
    assert (len(SR), len(SDES), len(RR), len(BYE), len(APP)) == (52, 16, 56, 8, 16)
    assert SR[:4] == bytes.fromhex("81c8000c")
    assert SDES[:4] == bytes.fromhex("81ca0003")


def test_parse_sr_sdes_compound():
    assert parse_rtcp(SR + SDES) == [
        RtcpReport(
            packet_type=200,
            reporter_ssrc=0x11111111,
            ssrc=0x22222222,
            fraction_lost=0.25,
            cumulative_lost=-2,
            highest_seq=0x0001FFFF,
            jitter=37,
            lsr=0xAABBCCDD,
            dlsr=65536,
        )
    ]


def test_parse_rr_with_two_blocks_and_trailing_bye_app():
    reports = parse_rtcp(RR + SDES + BYE + APP)
    assert [(r.packet_type, r.reporter_ssrc, r.ssrc) for r in reports] == [
        (201, 0x33333333, 0x44444444),
        (201, 0x33333333, 0x55555555),
    ]
    assert reports[0].fraction_lost == 0.0
    assert reports[1].fraction_lost == 255 / 256
    assert reports[1].cumulative_lost == 0x7FFFFF
    assert (reports[1].highest_seq, reports[1].jitter, reports[1].lsr, reports[1].dlsr) == (70000, 400, 1, 2)


def test_non_report_packets_alone_give_no_reports():
    assert parse_rtcp(SDES + BYE) == []
    assert parse_rtcp(rtcp(201, 0, struct.pack("!I", 1))) == []  # an empty RR


def test_padding_on_the_last_packet_is_skipped():
    padded = rtcp(201, 1, struct.pack("!I", 9) + report_block(7, 128, 5, 10, 3, 0, 0), padding=b"\x00\x00\x00\x04")
    (report,) = parse_rtcp(SDES + padded)
    assert (report.ssrc, report.fraction_lost, report.cumulative_lost) == (7, 0.5, 5)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "RTCP packet too short: 0 bytes, need at least 4"),
        (b"\x81\xc9\x00", "RTCP packet too short: 3 bytes, need at least 4"),
        (b"\x41" + RR[1:], "RTCP version must be 2, got 1"),
        (SR + b"\x40\xca\x00\x00", "RTCP version must be 2, got 1"),
        (RR[:-4], "RTCP length field (13 words) exceeds the 52 bytes left at offset 0"),
        (SR + SDES[:8], "RTCP length field (3 words) exceeds the 8 bytes left at offset 52"),
        (SR + b"\x81\xca", "RTCP header truncated: 2 bytes left at offset 52"),
        (b"\x83\xc9\x00\x07" + RR[4:32], "RTCP RR of 32 bytes too short for 3 report blocks"),
        (b"\x82\xc8\x00\x0c" + SR[4:], "RTCP SR of 52 bytes too short for 2 report blocks"),
        (b"\xa0\xc9\x00\x01" + b"\x00\x00\x00\x00", "RTCP padding length 0 is invalid for a 8-byte packet"),
        (b"\xa0\xc9\x00\x01" + b"\x00\x00\x00\x09", "RTCP padding length 9 is invalid for a 8-byte packet"),
    ],
)
def test_parse_rtcp_rejects_malformed(data, message):
    with pytest.raises(ValueError) as info:
        parse_rtcp(data)
    assert str(info.value) == message
