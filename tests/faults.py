"""A TCP proxy that can cut a dependency (PostgreSQL, Redis, SMTP) and bring it back, so outage
tests never stop the machine's shared services. Runs its own event loop in a thread."""

from __future__ import annotations

import asyncio
import socket
import threading
from urllib.parse import urlsplit, urlunsplit


class CuttableProxy:
    def __init__(self, target_host: str, target_port: int, *, hang: bool = False) -> None:
        self.target = (target_host, target_port)
        self.hang = hang  # when cut: accept and say nothing (a hung dependency) instead of refusing
        self.cut_flag = False
        self._writers: set[asyncio.StreamWriter] = set()
        self.loop = asyncio.new_event_loop()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()

    @classmethod
    def for_url(cls, url: str, **kw: bool) -> CuttableProxy:
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 5432, **kw)

    def url_via(self, url: str) -> str:
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)
        auth = netloc[0] + "@" if len(netloc) == 2 else ""
        return urlunsplit((parts.scheme, f"{auth}127.0.0.1:{self.port}", parts.path, parts.query, ""))

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except asyncio.CancelledError:
            pass

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._handle, sock=self._sock)
        self._ready.set()
        async with self._server:
            try:
                await self._server.serve_forever()
            except asyncio.CancelledError:
                pass

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_flag:
            if self.hang:
                self._writers.add(writer)
                return
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update({writer, up_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    if self.cut_flag and not self.hang:
                        break
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def start(self) -> CuttableProxy:
        self._thread.start()
        self._ready.wait(5)
        return self

    def cut(self) -> None:
        def _cut() -> None:
            self.cut_flag = True
            if not self.hang:
                for w in list(self._writers):
                    w.close()
                self._writers.clear()

        self.loop.call_soon_threadsafe(_cut)

    def restore(self) -> None:
        def _restore() -> None:
            self.cut_flag = False
            for w in list(self._writers):
                w.close()
            self._writers.clear()

        self.loop.call_soon_threadsafe(_restore)

    def stop(self) -> None:
        self.cut()
        self.loop.call_soon_threadsafe(self._server.close)

    def __enter__(self) -> CuttableProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
