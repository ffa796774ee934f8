"""API shapes of the webphone slice.

``WebphoneSessionOut.password`` is the only place a web phone's SIP password ever appears: the
response that minted it.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from ringwell.features.webphone.service import IceServer, WebphoneSession

__all__ = ["IceServerOut", "WebphoneSessionOut"]


class IceServerOut(BaseModel):
    """An ``RTCIceServer`` as ``new RTCPeerConnection({iceServers})`` takes it."""

    urls: list[str] = Field(description="STUN or TURN URLs (RFC 7064, RFC 7065)")
    username: str | None = Field(default=None, description="TURN only")
    credential: str | None = Field(default=None, description="TURN only")

    @classmethod
    def of(cls, server: IceServer) -> IceServerOut:
        return cls(urls=list(server.urls), username=server.username, credential=server.credential)


class WebphoneSessionOut(BaseModel):
    """A short-lived SIP account for the browser's phone: register over ``ws_url`` (RFC 7118)
    as ``sip_uri`` with digest ``username``/``password`` in ``realm`` until ``expires_at``."""

    sip_uri: str = Field(description="The address of record to register")
    username: str = Field(description="Digest username")
    password: str = Field(description="Digest password: in this response only, never stored")
    realm: str
    ws_url: str = Field(description="The SIP WebSocket (subprotocol `sip`)")
    extension: str = Field(description="The user's extension: calls to it ring this phone too")
    display_name: str
    expires_at: datetime = Field(description="The credential stops working then; ask for a new session before")
    ice_servers: list[IceServerOut]

    @classmethod
    def of(cls, session: WebphoneSession) -> WebphoneSessionOut:
        return cls(sip_uri=session.sip_uri, username=session.username, password=session.password,
                   realm=session.realm, ws_url=session.ws_url, extension=session.extension,
                   display_name=session.display_name, expires_at=session.expires_at,
                   ice_servers=[IceServerOut.of(server) for server in session.ice_servers])
