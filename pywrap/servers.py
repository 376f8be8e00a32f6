"""Access control for Python servers: a socketserver mixin and an asyncio helper, on pywrap.libwrap.

Contract:
- `WrappedServerMixin` (put it before the socketserver class): each accepted request is checked against
  the tables under the daemon name `wrap_daemon` before the handler is built; a refused one is closed
  without a byte, and its handler never runs. With ThreadingMixIn the check runs in the request's thread.
  The verdict is logged like tcpd's when `wrap_log` is true.
- `wrap_asyncio(daemon, handler)` returns a `start_server` callback that checks each connection in a
  worker thread (DNS and ident never block the event loop), closes refused ones, sends banners through
  the stream, and otherwise awaits `handler(reader, writer)`.
"""

from __future__ import annotations

import asyncio
import os
import socket

from pywrap.libwrap import AccessRequest


class WrappedServerMixin:
    wrap_daemon = "python"
    wrap_log = False
    wrap_tables: tuple[str, str] | None = None

    def finish_request(self, request, client_address) -> None:
        verdict = AccessRequest.from_socket(request, self.wrap_daemon).verdict(tables=self.wrap_tables)
        if self.wrap_log:
            verdict.log()
        if verdict.granted:
            super().finish_request(request, client_address)  # type: ignore[misc]
        # refused: socketserver closes the request after this returns; the handler never ran


def wrap_asyncio(daemon: str, handler, *, tables: tuple[str, str] | None = None, log: bool = False):
    async def callback(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raw = writer.get_extra_info("socket")
        # a private duplicate for the checks (address queries and socket options only: nothing on it
        # blocks, and its flags, shared with the transport's socket, are left alone)
        sock = socket.socket(fileno=os.dup(raw.fileno())) if raw is not None else None
        try:
            access = AccessRequest.from_socket(sock, daemon)
            verdict = await asyncio.to_thread(access.verdict, send_banners=False, tables=tables)
        except Exception:
            writer.close()  # fail closed
            raise
        finally:
            if sock is not None:
                sock.close()
        if log:
            verdict.log()
        if not verdict.granted:
            writer.close()
            await writer.wait_closed()
            return
        if verdict.banner:
            writer.write(verdict.banner)
        await handler(reader, writer)

    return callback
