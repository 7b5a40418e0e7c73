"""Read an HTTP body: its media type, and a response body within a deadline and a size cap.

A socket read timeout bounds each read, not the whole body: a server that sends one byte at a time could hold a
thread for as long as it likes, and a huge body would be loaded whole into memory. Reading in the chunks the
network delivers, and checking the clock and the size after each one, bounds both.
"""

from __future__ import annotations

import time

import requests
import urllib3


def media_type(content_type: str | None) -> str:
    """The media type of a ``Content-Type`` header, lowercased and without parameters ("" when absent)."""
    return (content_type or "").split(";")[0].strip().lower()


class BodyError(Exception):
    """The body could not be read in time or is too large; the message is safe to show and log."""


def read_body(response: requests.Response, deadline: float, limit: int, truncate: bool = False) -> bytes:
    """The body of a streamed response (``stream=True``), decoded (gzip/deflate) as sent.

    :raise BodyError: the deadline passed, the connection broke, or the body exceeds ``limit`` bytes (unless
        ``truncate``, which returns the first ``limit`` bytes instead).
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise BodyError("the server did not finish its answer within the deadline")
        try:
            chunk = response.raw.read1(65536, decode_content=True)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise BodyError(f"the answer could not be read ({type(exc).__name__})") from exc
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            if truncate:
                chunks.append(chunk)
                return b"".join(chunks)[:limit]
            raise BodyError(f"the answer is larger than {limit} bytes")
        chunks.append(chunk)
