"""The privacy test's instruments: a secret inside any larger value is found in that
value's hex and base64 spellings, wherever it starts; HTTP messages are framed and
their bodies decoded as they crossed the wire; the proxy records both directions."""

from __future__ import annotations

import asyncio
import base64
import gzip

from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from tools._capture import Capture, http_messages, variants

secrets_ = st.binary(min_size=8, max_size=64)
padding = st.binary(max_size=10)


@given(secret=secrets_, before=padding, after=padding)
def test_a_secret_inside_a_value_is_found_in_every_spelling_of_it(
    secret: bytes, before: bytes, after: bytes
) -> None:
    value = before + secret + after
    spelled = variants(secret)
    assert spelled["raw"] in value
    assert spelled["hex"] in value.hex().encode()
    assert spelled["HEX"] in value.hex().upper().encode()
    offset = len(before) % 3
    assert spelled[f"base64@{offset}"] in base64.b64encode(value)
    assert spelled[f"base64url@{offset}"] in base64.urlsafe_b64encode(value)
    # each base64 spelling still pins the secret down: most of its characters
    assert len(spelled[f"base64@{offset}"]) >= 4 * len(secret) // 3 - 3


@given(body=st.binary(max_size=300), sizes=st.lists(st.integers(1, 50), max_size=8))
def test_bodies_are_framed_by_length_or_chunks(body: bytes, sizes: list[int]) -> None:
    chunks, rest = [], body
    for size in sizes:
        chunks.append(rest[:size])
        rest = rest[size:]
    chunks = [c for c in [*chunks, rest] if c]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    stream = (
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        + b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked
        + b"HTTP/1.1 204 No Content\r\n\r\n"
    )
    first, second, third = http_messages(stream, response=True)
    assert (first.body, second.body, third.body) == (body, body, b"")
    assert first.complete and second.complete and third.complete
    assert first.header("content-length") == str(len(body))


def test_a_gzipped_body_is_decoded_and_a_cut_one_marked() -> None:
    packed = gzip.compress("كناري".encode() * 20)
    stream = (
        b"POST /x HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
        % (len(packed), packed)
        + b"POST /y HTTP/1.1\r\nContent-Length: 100\r\n\r\nonly part"
    )
    whole, cut = http_messages(stream, response=False)
    assert whole.body == "كناري".encode() * 20 and whole.complete
    assert cut.body == b"only part" and not cut.complete


async def test_the_proxy_records_both_directions_and_forwards_unchanged() -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=b"answer:" + await request.read())

    app = web.Application()
    app.router.add_post("/echo", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    capture = Capture()
    try:
        async with capture.front("n", "127.0.0.1", port) as url:
            reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
            writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nsecret")
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            assert b"Content-Length: 13" in head
            assert await reader.readexactly(13) == b"answer:secret"
            writer.close()
    finally:
        await runner.cleanup()
    [connection] = capture.connections
    assert connection.node == "n" and connection.request.endswith(b"\r\n\r\nsecret")
    [(_c, _d, request), (_c2, _d2, response)] = list(capture.messages())
    assert request.start_line == "POST /echo HTTP/1.1" and request.body == b"secret"
    assert response.start_line == "HTTP/1.1 200 OK" and response.body == b"answer:secret"
    assert capture.urls == {"n": url}
