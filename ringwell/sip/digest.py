"""HTTP Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760).

Server side: ``NonceManager`` issues nonces that carry their issue time and an HMAC (so they
need no table), and remembers the highest nonce-count seen for each nonce it accepted, so a
replayed Authorization is refused. ``challenge()`` builds WWW-/Proxy-Authenticate values and
``verify()`` checks an Authorization against a stored HA1. Client side: ``authorize()`` answers
a challenge. Time is always an argument.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
import secrets
import struct
from collections import deque
from dataclasses import dataclass

from ringwell.sip.message import Request, Response

__all__ = [
    "ALGORITHMS",
    "Challenge",
    "Credentials",
    "NonceManager",
    "NonceState",
    "Verdict",
    "answer_challenge",
    "authorize",
    "challenge",
    "compute_ha1",
    "parse_challenge",
    "parse_credentials",
    "verify",
]

#: Supported algorithms, most preferred first (RFC 8760 §2.4: offer the strongest first).
ALGORITHMS = ("SHA-256", "MD5")
_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
_HEX_RE = re.compile(r"[0-9a-f]{32}|[0-9a-f]{64}")
_PARAM_RE = re.compile(r'\s*([A-Za-z0-9\-_.!%*+`\'~]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]*)\s*(?:,|$)')


def _h(algorithm: str, text: str) -> str:
    base = algorithm.upper().removesuffix("-SESS")
    return _HASHES[base](text.encode("utf-8")).hexdigest()


def compute_ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """HA1 = H(username:realm:password): what Ringwell stores instead of a password."""
    return _h(algorithm, f"{username}:{realm}:{password}")


def _parse_params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _PARAM_RE.match(text, pos)
        if not match or match.end() == pos:
            raise ValueError("malformed auth parameters")
        name, value = match.group(1).lower(), match.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[name] = value
        pos = match.end()
    return params


@dataclass(frozen=True, slots=True)
class Credentials:
    """A parsed ``Digest`` Authorization / Proxy-Authorization value."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None


def parse_credentials(value: str) -> Credentials | None:
    """Parse an Authorization value; ``None`` when it is not Digest (unknown scheme)."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params = _parse_params(rest)
    try:
        return Credentials(
            username=params["username"],
            realm=params["realm"],
            nonce=params["nonce"],
            uri=params["uri"],
            response=params["response"].lower(),
            algorithm=params.get("algorithm", "MD5").upper(),
            qop=params.get("qop"),
            nc=params.get("nc"),
            cnonce=params.get("cnonce"),
            opaque=params.get("opaque"),
        )
    except KeyError as exc:
        raise ValueError(f"digest credentials lack {exc.args[0]}") from None


class NonceState(enum.Enum):
    VALID = "valid"
    STALE = "stale"
    INVALID = "invalid"


class NonceManager:
    """Issues and checks nonces; tracks nonce-counts to refuse replays.

    A nonce is ``base64(issued_at | random | HMAC(secret, issued_at | random))``; it is valid
    for ``lifetime`` seconds. Accepted (nonce, nc) pairs are remembered until the nonce
    expires, so memory is bounded by the rate of successful authentications.
    """

    def __init__(self, secret: bytes, lifetime: float = 300.0) -> None:
        self._secret = secret
        self.lifetime = lifetime
        self._last_nc: dict[str, int] = {}
        self._expiry: deque[tuple[float, str]] = deque()

    def issue(self, now: float) -> str:
        head = struct.pack(">d", now) + secrets.token_bytes(8)
        mac = hmac.new(self._secret, head, hashlib.sha256).digest()[:16]
        return base64.b64encode(head + mac).decode("ascii")

    def state(self, nonce: str, now: float) -> NonceState:
        try:
            raw = base64.b64decode(nonce, validate=True)
        except ValueError:
            return NonceState.INVALID
        if len(raw) != 32:
            return NonceState.INVALID
        head, mac = raw[:16], raw[16:]
        if not hmac.compare_digest(mac, hmac.new(self._secret, head, hashlib.sha256).digest()[:16]):
            return NonceState.INVALID
        (issued,) = struct.unpack(">d", head[:8])
        if now - issued > self.lifetime or issued - now > 5:
            return NonceState.STALE
        return NonceState.VALID

    def accept_count(self, nonce: str, nc: int, now: float) -> bool:
        """Record nonce-count ``nc`` for ``nonce``; False when it is not higher than before."""
        self._prune(now)
        last = self._last_nc.get(nonce)
        if last is not None and nc <= last:
            return False
        if last is None:
            self._expiry.append((now + self.lifetime, nonce))
        self._last_nc[nonce] = nc
        return True

    def _prune(self, now: float) -> None:
        expiry = self._expiry
        while expiry and expiry[0][0] < now:
            _, nonce = expiry.popleft()
            self._last_nc.pop(nonce, None)

    def __len__(self) -> int:
        return len(self._last_nc)


def challenge(realm: str, nonce: str, *, stale: bool = False, algorithms: tuple[str, ...] = ALGORITHMS) -> list[str]:
    """WWW-Authenticate / Proxy-Authenticate values, one per algorithm (RFC 8760 §2.4)."""
    stale_text = ", stale=true" if stale else ""
    return [
        f'Digest realm="{realm}", nonce="{nonce}", algorithm={alg}, qop="auth"{stale_text}'
        for alg in algorithms
    ]


class Verdict(enum.Enum):
    OK = "ok"
    STALE = "stale"  # right password, but an old nonce or a reused count: challenge again, stale=true
    FAIL = "fail"  # wrong password (or not our realm/algorithm): counts as a failed attempt
    UNKNOWN_NONCE = "unknown-nonce"  # not a nonce we issued: challenge again, proves nothing


def expected_response(creds: Credentials, ha1: str, method: str) -> str:
    """The ``response`` value a client knowing HA1 must send (RFC 7616 §3.4.1)."""
    alg = creds.algorithm
    if alg.endswith("-SESS"):
        ha1 = _h(alg, f"{ha1}:{creds.nonce}:{creds.cnonce}")
    ha2 = _h(alg, f"{method}:{creds.uri}")
    if creds.qop:
        return _h(alg, f"{ha1}:{creds.nonce}:{creds.nc}:{creds.cnonce}:{creds.qop}:{ha2}")
    return _h(alg, f"{ha1}:{creds.nonce}:{ha2}")


def verify(
    creds: Credentials,
    ha1: str,
    method: str,
    realm: str,
    nonces: NonceManager,
    now: float,
    offered: tuple[str, ...] = ALGORITHMS,
) -> Verdict:
    """Check credentials against the stored HA1 for their algorithm.

    Only the algorithms offered are accepted (no downgrade); qop=auth is required (we always
    offer it), and its nonce-count must grow.
    """
    if creds.realm != realm or creds.qop != "auth" or not creds.nc or not creds.cnonce:
        return Verdict.FAIL
    if creds.algorithm.removesuffix("-SESS") not in offered or not _HEX_RE.fullmatch(creds.response):
        return Verdict.FAIL
    state = nonces.state(creds.nonce, now)
    if state is NonceState.INVALID:
        return Verdict.UNKNOWN_NONCE
    if not hmac.compare_digest(expected_response(creds, ha1, method), creds.response):
        return Verdict.FAIL
    if state is NonceState.STALE:
        return Verdict.STALE
    try:
        nc = int(creds.nc, 16)
    except ValueError:
        return Verdict.FAIL
    if not nonces.accept_count(creds.nonce, nc, now):
        return Verdict.STALE  # a replay, or a client reusing a count: the password was right
    return Verdict.OK


@dataclass(frozen=True, slots=True)
class Challenge:
    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False


def parse_challenge(value: str) -> Challenge | None:
    """Parse a WWW-/Proxy-Authenticate value; ``None`` when it is not Digest."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params = _parse_params(rest)
    qop = tuple(q.strip() for q in params.get("qop", "").split(",") if q.strip())
    return Challenge(
        realm=params.get("realm", ""),
        nonce=params.get("nonce", ""),
        algorithm=params.get("algorithm", "MD5").upper(),
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
    )


def authorize(
    chal: Challenge,
    method: str,
    uri: str,
    username: str,
    password: str,
    nc: int = 1,
    cnonce: str | None = None,
) -> str:
    """The Authorization value answering ``chal`` (client side)."""
    if chal.algorithm.removesuffix("-SESS") not in _HASHES:
        raise ValueError(f"unsupported digest algorithm {chal.algorithm}")
    cnonce = cnonce or secrets.token_hex(8)
    qop = "auth" if "auth" in chal.qop else None
    creds = Credentials(
        username, chal.realm, chal.nonce, uri, "", chal.algorithm, qop, f"{nc:08x}" if qop else None,
        cnonce if qop or chal.algorithm.endswith("-SESS") else None, chal.opaque,
    )
    ha1 = compute_ha1(username, chal.realm, password, chal.algorithm.removesuffix("-SESS"))
    response = expected_response(creds, ha1, method)
    parts = [
        f'username="{username}"', f'realm="{chal.realm}"', f'nonce="{chal.nonce}"', f'uri="{uri}"',
        f'response="{response}"', f"algorithm={chal.algorithm}",
    ]
    if qop:
        parts += [f"qop={qop}", f"nc={creds.nc}", f'cnonce="{cnonce}"']
    if chal.opaque is not None:
        parts.append(f'opaque="{chal.opaque}"')
    return "Digest " + ", ".join(parts)


def answer_challenge(response: Response, method: str, uri: str, username: str,
                     password: str) -> tuple[str, str, Challenge] | None:
    """Answer a 401 or 407 (client side, §22.2): ``(header name, value, challenge)``.

    The first Digest challenge of the response with an algorithm we can compute is answered
    (``Authorization`` for a 401, ``Proxy-Authorization`` for a 407); None when there is none.
    """
    header, answer = ("www-authenticate", "Authorization") if response.status == 401 else (
        "proxy-authenticate", "Proxy-Authorization")
    for value in response.headers.get_all(header):
        chal = parse_challenge(value)
        if chal is not None and chal.algorithm.removesuffix("-SESS") in _HASHES:
            return answer, authorize(chal, method, uri, username, password), chal
    return None


def with_credentials(request: Request, via: str, header: tuple[str, str]) -> Request:
    """``request`` resent with credentials: same Call-ID, tags and body; a new Via (branch) and
    the next CSeq; earlier credentials replaced by ``header`` (§8.1.3.5, §22.2)."""
    headers = request.headers.copy()
    headers.set("Via", via)
    headers.set("CSeq", f"{request.cseq.number + 1} {request.method}")
    headers.remove("authorization")
    headers.remove("proxy-authorization")
    headers.add(*header)
    return Request(request.method, request.uri_text, headers, request.body)
