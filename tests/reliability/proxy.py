"""A TCP proxy on 127.0.0.1 that cuts the link between one station and the server.

It runs its own asyncio loop in a thread, so a synchronous harness can switch its mode while
station processes talk through it:

- `pass`: bytes flow both ways;
- `reset`: every open connection is aborted with a TCP RST, then bytes flow again;
- `refuse`: the port stops listening (connection refused) and open connections are reset;
- `blackhole`: connections are accepted and open ones kept, but nothing is relayed either way
  (the station waits for its request timeout); leaving it resets them;
- `lose_replies`: requests reach the server, and a connection is reset as its reply starts,
  so the server did the work and the station never hears of it (the resend case);
- `hold_replies`: requests reach the server, replies wait in the proxy until the mode changes
  (the harness kills the station meanwhile: it dies after the server committed its batch).
"""

import asyncio
import contextlib
import socket
import struct
import threading
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal

Mode = Literal["pass", "reset", "refuse", "blackhole", "lose_replies", "hold_replies"]
CHUNK = 65536
CONTROL_TIMEOUT = 10.0


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST (linger 0), as a crashed peer or a dropped NAT entry would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None  # None while black-holed
    posting: bool = False  # the last request was a POST (an event batch)

    def abort(self) -> None:
        _abort(self.client)
        if self.upstream is not None:
            _abort(self.upstream)


class LinkCutter:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.mode: Mode = "pass"
        # Modes entered, "connections", "connections reset", "replies lost", "replies held"
        # (of POSTs). Written on the proxy's thread; reading a count from another is safe.
        self.counts: Counter[str] = Counter()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[_Link] = set()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        self._call(self._listen())

    def stop(self) -> None:
        self._call(self._close_all(listen=False))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CONTROL_TIMEOUT)
        self._loop.close()

    def set_mode(self, mode: Mode) -> None:
        self._call(self._set_mode(mode))

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(CONTROL_TIMEOUT)

    # -- on the proxy's loop --

    async def _set_mode(self, mode: Mode) -> None:
        self.counts[mode] += 1
        previous, self.mode = self.mode, mode
        if mode in ("reset", "refuse") or previous == "blackhole":
            await self._close_all(listen=mode != "refuse")
        elif self._server is None:
            await self._listen()
        if mode == "reset":
            self.mode = "pass"

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._connection, "127.0.0.1", self.port, reuse_address=True
            )

    async def _close_all(self, *, listen: bool) -> None:
        closing, self._server = (self._server, None) if not listen else (None, self._server)
        if closing is not None:
            closing.close()
        for link in list(self._open):
            self.counts["connections reset"] += 1
            link.abort()
        self._open.clear()
        if closing is not None:
            await closing.wait_closed()  # after the aborts: 3.12+ waits for open connections
        if listen:
            await self._listen()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counts["connections"] += 1
        link = _Link(writer)
        self._open.add(link)
        try:
            if self.mode == "blackhole":
                with contextlib.suppress(OSError):
                    while await reader.read(CHUNK):
                        pass  # swallowed until the mode changes and the connection is reset
                return
            try:
                up_reader, link.upstream = await asyncio.open_connection(
                    "127.0.0.1", self.target_port
                )
            except OSError:
                _abort(writer)  # the server is down: the station sees the link drop
                return
            await asyncio.gather(
                self._relay(reader, link.upstream, link, reply=False),
                self._relay(up_reader, writer, link, reply=True),
            )
        finally:
            self._open.discard(link)
            writer.transport.abort()
            if link.upstream is not None:
                link.upstream.transport.abort()

    async def _relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: _Link,
        *,
        reply: bool,
    ) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await reader.read(CHUNK):
                if not reply and data[:5] in (b"POST ", b"GET /"):
                    link.posting = data.startswith(b"POST ")
                if self.mode == "blackhole":
                    continue
                if reply and self.mode == "lose_replies":
                    self.counts["replies lost"] += 1
                    link.abort()
                    return
                if reply and self.mode == "hold_replies":
                    if link.posting:
                        self.counts["replies held"] += 1
                    while self.mode == "hold_replies":
                        await asyncio.sleep(0.01)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
