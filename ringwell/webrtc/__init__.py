"""Browser legs: aiortc's ICE and DTLS-SRTP bridged to the plain RTP of the media relay."""
