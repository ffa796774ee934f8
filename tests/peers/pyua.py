"""A blocking SIP caller over UDP for the one test that needs what no packaged softphone does:
RTP from another port than its SDP says (what a NAT does). Messages are built and parsed with Ringwell's own core; the
server under test is always a separate process, so this is not the code checking itself.
"""

from __future__ import annotations

import secrets
import socket
import struct
import time

from ringwell.sip import digest
from ringwell.sip.message import Response, parse_message
from tests.peers.ports import LOOPBACK

__all__ = ["Caller", "rtp_packet"]


def rtp_packet(seq: int, ssrc: int, payload: bytes = b"\xff" * 160, pt: int = 0) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, ssrc) + payload


class Caller:
    def __init__(self, server_port: int, user: str, password: str) -> None:
        self.server = (LOOPBACK, server_port)
        self.user = user
        self.password = password
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.port = self.sock.getsockname()[1]
        self.call_id = secrets.token_hex(8) + "@pyua"
        self.tag = secrets.token_hex(4)
        self.cseq = 0
        self.to = ""
        self.target = ""

    def close(self) -> None:
        self.sock.close()

    def _send(self, text: str) -> None:
        self.sock.sendto(text.replace("\n", "\r\n").encode(), self.server)

    def _headers(self, method: str, uri: str, branch: str, to: str, extra: str = "") -> str:
        return (f"{method} {uri} SIP/2.0\n"
                f"Via: SIP/2.0/UDP {LOOPBACK}:{self.port};branch=z9hG4bK{branch};rport\n"
                f"Max-Forwards: 70\nFrom: <sip:{self.user}@{LOOPBACK}>;tag={self.tag}\nTo: {to}\n"
                f"Call-ID: {self.call_id}\nCSeq: {self.cseq} {method}\n"
                f"Contact: <sip:{self.user}@{LOOPBACK}:{self.port}>\n{extra}")

    def recv(self, timeout: float = 5.0) -> Response:
        deadline = time.monotonic() + timeout
        while True:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data, _ = self.sock.recvfrom(65535)
            message = parse_message(data)
            if isinstance(message, Response):
                return message
            # an in-dialog request from the server (BYE): answer 200
            text = data.decode(errors="replace")
            head = text.split("\r\n\r\n")[0].split("\r\n")
            keep = [h for h in head[1:] if h.split(":")[0].lower() in ("via", "from", "to", "call-id", "cseq")]
            self.sock.sendto(("SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n").encode(),
                             self.server)

    def invite(self, dialled: str, sdp_port: int, *, timeout: float = 10.0) -> Response:
        """INVITE (answering the 407), ACK the final response; returns it."""
        uri = f"sip:{dialled}@{LOOPBACK}:{self.server[1]}"
        sdp = (f"v=0\no=pyua 1 1 IN IP4 {LOOPBACK}\ns=-\nc=IN IP4 {LOOPBACK}\nt=0 0\n"
               f"m=audio {sdp_port} RTP/AVP 0 101\na=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/8000\n"
               "a=sendrecv\n").replace("\n", "\r\n")
        to = f"<{uri}>"
        auth = ""
        for _ in range(2):
            self.cseq += 1
            branch = secrets.token_hex(6)
            body_headers = f"Content-Type: application/sdp\nContent-Length: {len(sdp)}\n\n"
            self._send(self._headers("INVITE", uri, branch, to, auth + body_headers) + sdp.replace("\r\n", "\n"))
            deadline = time.monotonic() + timeout
            while True:
                response = self.recv(max(0.1, deadline - time.monotonic()))
                if response.status >= 200:
                    break
            resp_to = response.headers.get("to") or to
            if response.status >= 300:
                self._send(self._headers("ACK", uri, branch, resp_to, "Content-Length: 0\n\n"))
            if response.status == 407 and not auth:
                chal = digest.parse_challenge(response.headers.get("proxy-authenticate") or "")
                assert chal is not None
                auth = f"Proxy-Authorization: {digest.authorize(chal, 'INVITE', uri, self.user, self.password)}\n"
                continue
            break
        if 200 <= response.status < 300:
            self.to = response.headers.get("to") or to
            contact = (response.headers.get("contact") or "").strip("<>").split(">")[0]
            self.target = contact
            self._send(self._headers("ACK", self.target, secrets.token_hex(6), self.to, "Content-Length: 0\n\n"))
        return response

    def bye(self, timeout: float = 5.0) -> Response:
        self.cseq += 1
        self._send(self._headers("BYE", self.target, secrets.token_hex(6), self.to, "Content-Length: 0\n\n"))
        while True:
            response = self.recv(timeout)
            if response.cseq.method == "BYE" and response.status >= 200:
                return response
