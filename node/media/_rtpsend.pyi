"""Types of the native send step (node/media/_rtpsend.c; see node/media/native.py)."""

from typing import Any

MAX_PACKET: int

class Listener:
    ssrc: int
    seq: int
    ts_origin: int
    payload_type: int
    first: bool
    layout: int
    packets: int
    octets: int
    last_timestamp: int
    send_errors: int
    closed: bool

    def __init__(
        self,
        fd: int,
        family: int,
        host: str,
        port: int,
        srtp: int,
        protect: int,
        session: Any,
        is_closing: Any,
        ssrc: int,
        seq: int,
        ts_origin: int,
        payload_type: int,
        scope_id: int = 0,
    ) -> None: ...
    def close(self) -> None: ...

def send_batch(
    listeners: list[Listener],
    start: int,
    stop: int,
    layouts: tuple[tuple[int, bytes], ...],
    pts: int,
    payload_size: int,
    max_errors: int,
) -> tuple[int, list[tuple[Listener, str]] | None]: ...
