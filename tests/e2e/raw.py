"""A raw protocol client on our own codec: exact bytes, pipelining, no client library."""

from __future__ import annotations

import socket
import struct

from kafkito.protocol import decode_response, encode_request


class RawClient:
    def __init__(self, host: str, port: int, timeout_s: float = 10) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.correlation_id = 0

    def send(self, api_key: int, version: int, body) -> int:
        self.correlation_id += 1
        self.sock.sendall(encode_request(api_key, version, self.correlation_id, "raw", body))
        return self.correlation_id

    def receive(self, api_key: int, version: int):
        """(correlation_id, response) of the next response on the wire."""
        header = self.sock.recv(4, socket.MSG_WAITALL)
        if len(header) < 4:
            raise ConnectionError("closed by the broker")
        size = struct.unpack(">i", header)[0]
        return decode_response(api_key, version, self.sock.recv(size, socket.MSG_WAITALL))

    def call(self, api_key: int, version: int, body):
        sent = self.send(api_key, version, body)
        correlation_id, response = self.receive(api_key, version)
        assert correlation_id == sent
        return response

    def closed_by_broker(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()
