"""A minimal HTTP/1.1 GET over asyncio streams, for async tests against the API simulator."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class HTTPStatusError(Exception):
    """A non-2xx answer, shaped like httpx's: the response hangs off ``.response``."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"HTTP {response.status}")
        self.response = response


async def get(base_url: str, path: str) -> Response:
    """GET *path* on a real socket; raise `HTTPStatusError` for a status >= 400."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    reader, writer = await asyncio.open_connection(host, port)
    try:
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    response = Response(int(status_line.split()[1]), headers, body)
    if response.status >= 400:
        raise HTTPStatusError(response)
    return response
