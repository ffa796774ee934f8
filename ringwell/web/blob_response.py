"""An encrypted blob streamed as an HTTP response, decrypted as it is read (voicemail, recordings)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

from ringwell.blobs import OpenBlob

__all__ = ["blob_response"]


async def _stream(blob: OpenBlob) -> AsyncIterator[bytes]:
    try:
        async for piece in blob:
            yield piece
    finally:
        blob.close()  # also when the client goes away mid-stream


def blob_response(blob: OpenBlob, media_type: str, filename: str, *, attachment: bool = True) -> StreamingResponse:
    """``blob`` (already opened: errors were answered before) as a download or an inline player source."""
    disposition = "attachment" if attachment else "inline"
    return StreamingResponse(_stream(blob), media_type=media_type,
                             headers={"Content-Length": str(blob.ref.size),
                                      "Content-Disposition": f'{disposition}; filename="{filename}"'})
