"""SIPp call scenarios for a B2BUA (Ringwell) and a background runner for SIPp as a UAS.

UAC scenarios (caller; ``field0`` = SIP username, ``field1`` = ``[authentication ...]``,
``-s`` = what is dialled) answer the 407 and then expect what the name says. UAS scenarios
(callee) run in the background on the port the callee registered from (``reg.xml`` first,
same ``-p``). Ringwell does not record-route: in-dialog requests go to the Contact of the
other side (``[next_url]``).
"""

from __future__ import annotations

from pathlib import Path

from tests.peers.proc import BoundedProcess
from tests.peers.sipp import Transport, sipp_command

__all__ = ["UAC", "UAS", "UAS_180", "start_sipp", "uas_200", "write_scenario"]

SDP = """v=0
      o=sipp 53655765 {version} IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 8 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15{direction}"""


def _invite(cseq: int, auth: bool) -> str:
    auth_line = "      [field1]\n" if auth else ""
    return f"""  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Caller [field0]" <sip:[field0]@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: {cseq} INVITE
      Contact: <sip:[field0]@[local_ip]:[local_port];transport=[transport]>
{auth_line}      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      {SDP.format(version=1, direction="")}

    ]]>
  </send>
"""


_ACK_407 = """  <send>
    <![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: "Caller [field0]" <sip:[field0]@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""


def _in_dialog(method: str, cseq: str, body: str = "", retrans: bool = True) -> str:
    retr = ' retrans="500"' if retrans else ""
    ctype = "      Content-Type: application/sdp\n" if body else ""
    sdp = f"\n      {body}\n" if body else ""
    return f"""  <send{retr}>
    <![CDATA[

      {method} [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Caller [field0]" <sip:[field0]@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} {method}
      Contact: <sip:[field0]@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
{ctype}      Content-Length: [len]
{sdp}
    ]]>
  </send>
"""


def _uac(name: str, answered: str, *, final: str = '<recv response="200" rtd="true" rrs="true"/>',
         before_final: str = "") -> str:
    """INVITE, 407, ACK, INVITE with credentials, provisional responses, then ``final`` and ``answered``."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="{name}">
{_invite(1, auth=False)}
  <recv response="100" optional="true"/>
  <recv response="407" auth="true"/>
{_ACK_407}
{_invite(2, auth=True)}
  <recv response="100" optional="true"/>
{before_final or _PROVISIONAL}
  {final}
{answered}
  <ResponseTimeRepartition value="10, 50, 100, 500, 1000"/>
</scenario>
"""


_PROVISIONAL = """  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
"""
_ACK_2XX = _in_dialog("ACK", "2", retrans=False)
_BYE = _in_dialog("BYE", "3") + '  <recv response="200" crlf="true"/>\n'

_ACK_FINAL = """  <send>
    <![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: "Caller [field0]" <sip:[field0]@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""

_CANCEL = """  <pause milliseconds="{ms}"/>
  <send>
    <![CDATA[

      CANCEL sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: "Caller [field0]" <sip:[field0]@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 2 CANCEL
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
"""


def _reinvite(cseq: int, direction: str) -> str:
    body = SDP.format(version=1 + cseq, direction=f"\n      a={direction}")
    return (_in_dialog("INVITE", str(cseq), body)
            + '  <recv response="100" optional="true"/>\n  <recv response="200"/>\n'
            + _in_dialog("ACK", str(cseq), retrans=False))


def _expect(status: int) -> str:
    return _uac(f"uac_expect_{status}", _ACK_FINAL, final=f'<recv response="{status}"/>')


UAC: dict[str, str] = {
    # answered; hold for -d ms; BYE
    "call": _uac("uac_call", _ACK_2XX + "  <pause/>\n" + _BYE),
    # answered; wait for the callee's BYE
    "wait_bye": _uac("uac_wait_bye", _ACK_2XX + '  <recv request="BYE"/>\n' + """  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
"""),
    # answered; hold, resume, BYE (re-INVITEs with a=sendonly then a=sendrecv)
    "hold": _uac("uac_hold", _ACK_2XX + '  <pause milliseconds="300"/>\n' + _reinvite(3, "sendonly")
                 + '  <pause milliseconds="300"/>\n' + _reinvite(4, "sendrecv")
                 + _in_dialog("BYE", "5") + '  <recv response="200" crlf="true"/>\n'),
    # CANCEL after ringing for -d ms
    "cancel": _uac("uac_cancel", _ACK_FINAL, before_final='  <recv response="180"/>\n' + _CANCEL.format(ms=1000),
                   final='<recv response="487"/>'),
    "busy": _expect(486),
    "unavailable": _expect(480),
    "not_found": _expect(404),
    "no_media_ports": _expect(503),
    "payment_required": _expect(402),
    "forbidden": _expect(403),
    "address_incomplete": _expect(484),
}

_UAS_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="{name}">
  <recv request="INVITE" crlf="true" rrs="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="local_to"/>
    </action>
  </recv>
"""

UAS_180 = """  <send>
    <![CDATA[

      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
"""


def uas_200(tagged: bool = False, version: int = 1) -> str:
    to = "[last_To:]" if tagged else "[last_To:];tag=[pid]SIPpTag01[call_number]"
    return f"""  <send retrans="500">
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      {to}
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      {SDP.format(version=version, direction="")}

    ]]>
  </send>
"""


_UAS_200_PLAIN = """  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
"""

_UAS_TAIL = """  <nop><action><log message="from=[$remote_from] to=[$local_to]"/></action></nop>
  <timewait milliseconds="1000"/>
</scenario>
"""

_UAS_BYE = """  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$local_to];tag=[pid]SIPpTag01[call_number]
      To: [$remote_from]
      Call-ID: [call_id]
      CSeq: 1 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
"""

UAS: dict[str, str] = {
    "answer": _UAS_HEAD.format(name="uas_answer") + UAS_180 + uas_200()
    + '  <recv request="ACK" rtd="true" crlf="true"/>\n  <recv request="BYE"/>\n' + _UAS_200_PLAIN + _UAS_TAIL,
    "busy": _UAS_HEAD.format(name="uas_busy") + """  <send>
    <![CDATA[

      SIP/2.0 486 Busy Here
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK"/>
""" + _UAS_TAIL,
    "ring": _UAS_HEAD.format(name="uas_ring") + UAS_180 + """  <recv request="CANCEL">
    <action><ereg regexp=".*" search_in="hdr" header="Reason:" assign_to="reason"/></action>
  </recv>
  <nop><action><log message="cancel reason=[$reason]"/></action></nop>
""" + _UAS_200_PLAIN + """  <send>
    <![CDATA[

      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      CSeq: 1 INVITE
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK"/>
""" + _UAS_TAIL,
    # answers, then hangs up after -d ms
    "bye": _UAS_HEAD.format(name="uas_bye") + UAS_180 + uas_200()
    + '  <recv request="ACK" crlf="true"/>\n  <pause/>\n' + _UAS_BYE + _UAS_TAIL,
    # answers, then two re-INVITEs (hold and resume), then the caller's BYE
    "hold": _UAS_HEAD.format(name="uas_hold") + UAS_180 + uas_200() + '  <recv request="ACK" crlf="true"/>\n'
    + """  <recv request="INVITE">
    <action><ereg regexp="a=(sendonly|recvonly|inactive)" search_in="body" check_it="true" assign_to="h1"/></action>
  </recv>
  <nop><action><log message="hold offer [$h1]"/></action></nop>
""" + uas_200(tagged=True, version=2) + '  <recv request="ACK"/>\n' + """  <recv request="INVITE">
    <action><ereg regexp="a=(sendrecv)" search_in="body" check_it="true" assign_to="h2"/></action>
  </recv>
  <nop><action><log message="resume offer [$h2]"/></action></nop>
""" + uas_200(tagged=True, version=3) + '  <recv request="ACK"/>\n  <recv request="BYE"/>\n' + _UAS_200_PLAIN
    + _UAS_TAIL,
}


def write_scenario(directory: Path, name: str, xml: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.xml"
    path.write_text(xml)
    return path


def start_sipp(
    port: int,
    scenario: Path,
    workdir: Path,
    *,
    local_port: int,
    calls: int = 1,
    transport: Transport = "udp",
    seconds: float = 60.0,
    extra_args: tuple[str, ...] = (),
) -> BoundedProcess:
    """SIPp in the background (a UAS waiting for calls), bounded by ``seconds``."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = sipp_command(port, scenario, calls=calls, transport=transport, sipp_timeout=seconds,
                       local_port=local_port, extra_args=["-trace_logs", "-log_file", "logs.log", *extra_args])
    return BoundedProcess(cmd, seconds=seconds + 5, log_path=workdir / "stdout.log", cwd=workdir)
