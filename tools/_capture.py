"""Record every byte between nodes, and look for what must not be there.

:class:`Capture` runs one recording TCP proxy in front of each node (a
:data:`tools._localfed.Front`): peers are given the proxy's address, so both the
requests a node's peers make and the answers it gives pass through, byte for byte,
headers and bodies. The proxy forwards bytes unchanged, so HTTP message signatures,
which cover the destination's authority (the proxy's, as the client addressed it),
still verify.

:func:`variants` spells a secret every way it might travel (hex, base64, base64url at
each alignment); :meth:`Capture.find` looks for each in the raw streams and in every
HTTP body decoded (de-chunked, decompressed).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import zlib
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

__all__ = ["Capture", "Connection", "HttpMessage", "Leak", "http_messages", "variants"]

#: Bytes read per chunk; any size works (a needle split across chunks is still found:
#: each direction of a connection is searched whole).
_CHUNK: Final = 65_536
#: A needle this short would match random bytes (keys, signatures) by chance: a
#: needle of 8 bytes does so once in 2**64 positions.
MIN_NEEDLE: Final = 8

Direction = Literal["request", "response"]


@dataclass
class Connection:
    """One TCP connection through a proxy: what the client sent (``request``: the
    peer calling this node) and what the node answered (``response``)."""

    node: str
    number: int
    request: bytearray = field(default_factory=bytearray)
    response: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True, slots=True)
class HttpMessage:
    """One HTTP/1.1 message as it crossed the wire, its body decoded. ``complete``
    is false for a message cut off by its connection's end (a request the client
    abandoned part way)."""

    start_line: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    complete: bool = True

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


@dataclass(frozen=True, slots=True)
class Leak:
    """A needle found: which secret, spelled how, where."""

    secret: str
    spelling: str
    where: str


class Capture:
    """Recording proxies and everything they carried."""

    def __init__(self) -> None:
        self.connections: list[Connection] = []
        self.urls: dict[str, str] = {}  # node name -> its proxy's base URL
        self._handlers: set[asyncio.Task[None]] = set()
        self._open: set[asyncio.StreamWriter] = set()

    @contextlib.asynccontextmanager
    async def front(self, node: str, host: str, port: int) -> AsyncIterator[str]:
        """A proxy on ``host`` forwarding to ``node`` at ``host:port``; yields its base
        URL (a :data:`tools._localfed.Front`)."""

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._handlers.add(task)
            try:
                await self._relay(node, reader, writer, host, port)
            finally:
                self._handlers.discard(task)

        server = await asyncio.start_server(accept, host, 0)
        bound = server.sockets[0].getsockname()[1]
        url = f"http://{host}:{bound}"
        self.urls[node] = url
        try:
            yield url
        finally:
            server.close()
            # close the sockets rather than cancel the relays: asyncio's stream server
            # logs a handler task that ends cancelled as an error
            for writer in list(self._open):
                writer.close()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await server.wait_closed()

    async def _relay(
        self,
        node: str,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        host: str,
        port: int,
    ) -> None:
        connection = Connection(node, len(self.connections) + 1)
        self.connections.append(connection)
        try:
            node_reader, node_writer = await asyncio.open_connection(host, port)
        except OSError:
            client_writer.close()
            return
        writers = (node_writer, client_writer)
        self._open.update(writers)
        try:
            await asyncio.gather(
                _pump(client_reader, node_writer, connection.request),
                _pump(node_reader, client_writer, connection.response),
            )
        finally:
            for writer in writers:
                self._open.discard(writer)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    # -- what was carried ---------------------------------------------------------------

    @property
    def total_bytes(self) -> int:
        return sum(len(c.request) + len(c.response) for c in self.connections)

    def messages(self) -> Iterator[tuple[Connection, Direction, HttpMessage]]:
        """Every HTTP message carried, in order per connection and direction."""
        for connection in self.connections:
            for direction in ("request", "response"):
                stream = bytes(getattr(connection, direction))
                for message in http_messages(stream, response=direction == "response"):
                    yield connection, direction, message

    def blobs(self) -> Iterator[tuple[str, bytes]]:
        """What to search: each direction of each connection as it was sent, then
        each HTTP body decoded, each named for the report."""
        for connection in self.connections:
            name = f"{connection.node} connection {connection.number}"
            yield f"{name} request bytes", bytes(connection.request)
            yield f"{name} response bytes", bytes(connection.response)
        for connection, direction, message in self.messages():
            if message.body:
                where = f"{connection.node} connection {connection.number} {direction}"
                yield f"{where} body of {message.start_line!r}", message.body

    def find(self, needles: Mapping[str, Mapping[str, bytes]]) -> list[Leak]:
        """Every place any needle occurs.

        Args:
            needles: secret name -> {spelling name -> bytes}.
        """
        leaks = []
        blobs = list(self.blobs())
        for secret, spellings in needles.items():
            for spelling, needle in spellings.items():
                if len(needle) < MIN_NEEDLE:
                    raise ValueError(f"{secret} as {spelling}: under {MIN_NEEDLE} bytes")
                for where, blob in blobs:
                    if needle in blob:
                        leaks.append(Leak(secret, spelling, where))
        return leaks


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, into: bytearray
) -> None:
    try:
        while data := await reader.read(_CHUNK):
            into += data
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


# -- HTTP/1.1 framing (RFC 9112 §6) -----------------------------------------------------------

_HEAD_END: Final = b"\r\n\r\n"


def http_messages(stream: bytes, *, response: bool) -> list[HttpMessage]:
    """The HTTP/1.1 messages in one direction of a connection, bodies de-chunked and
    decompressed. Stops at the first thing that is not a message (what is left is
    still searched raw, by :meth:`Capture.blobs`)."""
    out = []
    position = 0
    while position < len(stream):
        end = stream.find(_HEAD_END, position)
        if end < 0:
            break
        lines = stream[position:end].decode("latin-1").split("\r\n")
        start, headers = lines[0], tuple(_header(line) for line in lines[1:] if ":" in line)
        position = end + len(_HEAD_END)
        head = HttpMessage(start, headers, b"")
        body, position, complete = _body(stream, position, head, response=response)
        body = _decoded(body, head.header("content-encoding"))
        out.append(HttpMessage(start, headers, body, complete))
    return out


def _header(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    return name.strip(), value.strip()


def _body(
    stream: bytes, position: int, message: HttpMessage, *, response: bool
) -> tuple[bytes, int, bool]:
    """The message's body, where the next message starts, and whether it is whole."""
    if "chunked" in (message.header("transfer-encoding") or "").lower():
        return _dechunked(stream, position)
    length = message.header("content-length")
    if length is not None and length.isdigit():
        end = position + int(length)
        return stream[position:end], end, end <= len(stream)
    status = message.start_line.split(" ")
    if not response or (len(status) > 1 and status[1] in ("204", "304")):
        return b"", position, True
    return stream[position:], len(stream), True  # delimited by the connection's end


def _dechunked(stream: bytes, position: int) -> tuple[bytes, int, bool]:
    body = bytearray()
    while True:
        line_end = stream.find(b"\r\n", position)
        if line_end < 0:
            return bytes(body), len(stream), False
        size_text = stream[position:line_end].split(b";")[0].strip()
        if not re.fullmatch(rb"[0-9A-Fa-f]+", size_text):
            return bytes(body), len(stream), False
        size = int(size_text, 16)
        position = line_end + 2
        if size == 0:  # then trailer fields, each ending in CRLF, and a CRLF
            end = stream.find(_HEAD_END, position - 2)
            return bytes(body), len(stream) if end < 0 else end + 4, end >= 0
        body += stream[position : position + size]
        position += size + 2


def _decoded(body: bytes, encoding: str | None) -> bytes:
    encoding = (encoding or "").lower()
    try:
        if encoding in ("gzip", "x-gzip"):
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        if encoding == "deflate":
            return zlib.decompress(body)
    except zlib.error:
        return body
    return body


# -- spellings ----------------------------------------------------------------------------------


def _b64_inside(data: bytes, alphabet: bytes | None) -> Iterable[tuple[int, bytes]]:
    """The base64 characters that encode only ``data``'s bytes, when ``data`` starts
    at each of the three offsets within a 3-byte group of a larger encoded value."""
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data)
        if alphabet is not None:
            encoded = encoded.translate(bytes.maketrans(b"+/", alphabet))
        total = offset + len(data)
        skip = {0: 0, 1: 2, 2: 3}[offset]  # characters that mix in the bytes before
        keep = 4 * (total // 3) + {0: 0, 1: 1, 2: 2}[total % 3]  # ... or after
        yield offset, encoded[skip:keep]


def variants(data: bytes) -> dict[str, bytes]:
    """``data`` as it might travel: raw, hex (both cases), base64 and base64url at each
    alignment (a secret inside a larger encoded value is spelled differently
    depending on where it starts)."""
    spelled = {"raw": data, "hex": data.hex().encode(), "HEX": data.hex().upper().encode()}
    for name, alphabet in (("base64", None), ("base64url", b"-_")):
        for offset, text in _b64_inside(data, alphabet):
            spelled[f"{name}@{offset}"] = text
    return spelled
