"""SIPp playing a carrier's gateway for Ringwell's trunks.

UAS scenarios (the carrier receiving Ringwell's outbound calls) optionally challenge the
INVITE with 401 — SIPp's ``verifyauth`` reads the Authorization header only, so a 407 could
not be checked — and verify Ringwell's answer (username ``carrier-user``, password
``carrier-pass``); each logs what it received (``ruri=… from=… to=…``) so a test can check the
number format and the caller ID. The UAC scenario is the carrier calling a number rented from
Ringwell (no authentication: a trunk is recognised by its source address and port).
"""

from __future__ import annotations

from tests.peers.sipp_calls import SDP, UAS_180, uas_200

__all__ = ["CARRIER_PASSWORD", "CARRIER_REGISTRAR", "CARRIER_UAC", "CARRIER_UAS", "CARRIER_USER"]

CARRIER_USER = "carrier-user"
CARRIER_PASSWORD = "carrier-pass"

_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="{name}">
"""

_CHALLENGE = f"""  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[

      SIP/2.0 401 Unauthorized
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      WWW-Authenticate: Digest realm="carrier.example", nonce="[pid]n[call_number]x7f3a", algorithm=MD5
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK"/>
  <recv request="INVITE" rrs="true">
    <action>
      <verifyauth assign_to="authvalid" username="{CARRIER_USER}" password="{CARRIER_PASSWORD}"/>
"""

_PLAIN_INVITE = """  <recv request="INVITE" crlf="true" rrs="true">
    <action>
"""

_SEEN = """      <ereg regexp="^INVITE ([^ ]+) SIP" search_in="msg" assign_to="rline,ruri"/>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="to"/>
    </action>
  </recv>
  <nop><action><log message="ruri=[$ruri] from=[$from] to=[$to] line=[$rline]"/></action></nop>
"""

_AUTH_CHECK = """  <nop hide="true" test="authvalid" next="good"/>
  <nop><action><log message="auth=bad"/></action></nop>
  <send>
    <![CDATA[

      SIP/2.0 403 Forbidden
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK" next="end"/>
  <label id="good"/>
  <nop><action><log message="auth=ok"/></action></nop>
"""


def _final(status: int, reason: str) -> str:
    return f"""  <send>
    <![CDATA[

      SIP/2.0 {status} {reason}
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK"/>
"""


_ANSWER = UAS_180 + uas_200() + """  <recv request="ACK" crlf="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="dlg_from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="dlg_to"/>
    </action>
  </recv>
"""

_BYE_FROM_CARRIER = """  <pause/>
  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$dlg_to]
      To: [$dlg_from]
      Call-ID: [call_id]
      CSeq: 1 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
"""

_WAIT_BYE = """  <recv request="BYE" timeout="120000">
    <action><ereg regexp=".*" search_in="hdr" header="Reason:" assign_to="reason"/></action>
  </recv>
  <nop><action><log message="bye reason=[$reason] dialog=[$dlg_from] [$dlg_to]"/></action></nop>
  <send>
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

_TAIL = """  <label id="end"/>
  <timewait milliseconds="500"/>
</scenario>
"""

CARRIER_UAS: dict[str, str] = {
    # challenges, checks the credentials, answers, hangs up after -d ms
    "auth_hangup": _HEAD.format(name="carrier_auth_hangup") + _CHALLENGE + _SEEN + _AUTH_CHECK + _ANSWER
    + _BYE_FROM_CARRIER + _TAIL,
    # challenges, checks the credentials, answers, waits for Ringwell's BYE (logs its Reason)
    "auth_wait": _HEAD.format(name="carrier_auth_wait") + _CHALLENGE + _SEEN + _AUTH_CHECK + _ANSWER + _WAIT_BYE
    + _TAIL,
    # no authentication: answers and waits for the BYE
    "answer_wait": _HEAD.format(name="carrier_answer_wait") + _PLAIN_INVITE + _SEEN + _ANSWER + _WAIT_BYE + _TAIL,
    "fail_503": _HEAD.format(name="carrier_503") + _PLAIN_INVITE + _SEEN + _final(503, "Service Unavailable")
    + _TAIL,
    "busy_486": _HEAD.format(name="carrier_486") + _PLAIN_INVITE + _SEEN + _final(486, "Busy Here") + _TAIL,
}

# The carrier calls [service] (the rented number as the carrier sends it) and hangs up after -d ms.
CARRIER_UAC = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="carrier_uac">
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+12125550199@[local_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:+12125550199@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      {SDP.format(version=1, direction="")}

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+12125550199@[local_ip]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <pause/>
  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+12125550199@[local_ip]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
"""


def _register_round(n: int) -> str:
    return f"""  <recv request="REGISTER" crlf="true"/>
  <send>
    <![CDATA[

      SIP/2.0 401 Unauthorized
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      WWW-Authenticate: Digest realm="carrier.example", nonce="[pid]r{n}x[call_number]", algorithm=MD5
      Content-Length: 0

    ]]>
  </send>
  <recv request="REGISTER">
    <action>
      <verifyauth assign_to="authvalid" username="{CARRIER_USER}" password="{CARRIER_PASSWORD}"/>
      <ereg regexp="&lt;([^&gt;]*)&gt;" search_in="hdr" header="Contact:" assign_to="contact_all,contact"/>
      <ereg regexp="[0-9]+" search_in="hdr" header="Expires:" assign_to="asked"/>
    </action>
  </recv>
  <nop hide="true" test="authvalid" next="ok{n}"/>
  <nop><action><log message="register{n} auth=bad"/></action></nop>
  <send next="end">
    <![CDATA[

      SIP/2.0 403 Forbidden
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <label id="ok{n}"/>
  <nop><action><log message="register{n} auth=ok contact=[$contact] asked=[$asked] ([$contact_all])"/></action></nop>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <[$contact]>;expires=10
      Content-Length: 0

    ]]>
  </send>
"""


# A carrier's registrar: challenges each REGISTER, checks the answer, grants 10 s; expects the
# refresh (at half the expiry) to do the same.
CARRIER_REGISTRAR = (_HEAD.format(name="carrier_registrar") + _register_round(1) + _register_round(2)
                     + """  <label id="end"/>
</scenario>
""")
