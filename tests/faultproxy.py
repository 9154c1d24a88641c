"""A TCP proxy for fault tests: forwards both ways, and can drop the answer to the next
Produce request (forward the request, let the broker act on it, then cut the connection
before its response reaches the client), which is how a lost response looks to a client."""

from __future__ import annotations

import socket
import struct
import threading


class DroppingProxy:
    def __init__(self, target: tuple[str, int], port: int = 0) -> None:
        self.target = target
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.drop_next_produce_response = False
        self.dropped = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self.listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            state = {"cut": False}
            threading.Thread(target=self._up, args=(client, upstream, state), daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client, state), daemon=True).start()

    def _up(self, client, upstream, state) -> None:
        """Client to broker, frame by frame, watching for Produce (api key 0)."""
        buf = b""
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                buf += data
                while len(buf) >= 6:
                    (size,) = struct.unpack_from(">i", buf)
                    if len(buf) < 4 + size:
                        break
                    frame, buf = buf[:4 + size], buf[4 + size:]
                    (api_key,) = struct.unpack_from(">h", frame, 4)
                    if api_key == 0 and self.drop_next_produce_response:
                        self.drop_next_produce_response = False
                        state["cut"] = True  # the broker gets it; the client never hears back
                    upstream.sendall(frame)
        except OSError:
            pass
        finally:
            _close(client, upstream)

    def _down(self, upstream, client, state) -> None:
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                if state["cut"]:
                    self.dropped += 1
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            _close(client, upstream)


def _close(*socks) -> None:
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()
