"""ICE settings: STUN/TURN servers, which host addresses to offer, which UDP ports to bind.

Server strings (``IceSettings.ice_servers``) take one of these forms; user and password
are percent-decoded, so ``%40`` stands for ``@`` and ``%3A`` for ``:``::

    stun:host:port
    turn:user:password@host:port[?transport=udp|tcp]
    turns:user:password@host:port?transport=tcp

aioice has no options for host addresses or a port range, so :func:`install_ice_policy`
adjusts it from outside (see there for how and why).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

__all__ = ["IceSettings", "install_ice_policy", "parse_ice_server", "rtc_configuration"]

logger = logging.getLogger(__name__)

_HOST_ADDRESSES_HOOK = "get_host_addresses"
_ORIGINAL_GET_HOST_ADDRESSES: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses


@dataclass(frozen=True, slots=True)
class IceSettings:
    ice_servers: tuple[str, ...] = ()
    """STUN/TURN servers (forms in the module docstring); empty means none at all."""
    host_addresses: tuple[str, ...] = ()
    """Addresses offered as host candidates; empty means aioice's choice (all but loopback)."""
    udp_port_min: int = 0
    """Lowest UDP port for ICE sockets; 0 (with udp_port_max 0) means any port."""
    udp_port_max: int = 0

    def __post_init__(self) -> None:
        if (self.udp_port_min == 0) != (self.udp_port_max == 0):
            raise ValueError("set both udp_port_min and udp_port_max, or neither")
        if not 0 <= self.udp_port_min <= self.udp_port_max <= 65535:
            raise ValueError("invalid UDP port range")
        for server in self.ice_servers:
            parse_ice_server(server)

    @property
    def port_range(self) -> tuple[int, int] | None:
        return (self.udp_port_min, self.udp_port_max) if self.udp_port_min else None


def parse_ice_server(text: str) -> RTCIceServer:
    """One server string -> aiortc's ``RTCIceServer`` (credentials split off the URL)."""
    scheme, sep, rest = text.partition(":")
    if not sep or scheme not in ("stun", "stuns", "turn", "turns") or not rest:
        raise ValueError(f"not a STUN/TURN server: {text!r}")
    username: str | None = None
    credential: str | None = None
    if "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
        user, colon, password = userinfo.partition(":")
        if not colon:
            raise ValueError(f"credentials must be user:password in {text!r}")
        username, credential = unquote(user), unquote(password)
    elif scheme.startswith("turn"):
        raise ValueError(f"a TURN server needs user:password@ in {text!r}")
    return RTCIceServer(urls=f"{scheme}:{rest}", username=username, credential=credential)


def rtc_configuration(settings: IceSettings) -> RTCConfiguration:
    # An explicit empty list matters: with None aiortc falls back to Google's STUN server.
    return RTCConfiguration(iceServers=[parse_ice_server(s) for s in settings.ice_servers])


def install_ice_policy(settings: IceSettings, loop: asyncio.AbstractEventLoop) -> None:
    """Make aioice honour ``host_addresses`` and the UDP port range. Idempotent.

    Host addresses: aioice gathers host candidates from its module function
    ``aioice.ice.get_host_addresses``, which always leaves out 127.0.0.1 (and offers every
    interface). A node behind a known address, and tests on loopback, need exactly the
    configured list, so that function is replaced (process-wide: aioice has no per-
    connection hook); with no addresses configured the original is put back.

    Port range: aioice binds each host candidate with
    ``loop.create_datagram_endpoint(..., local_addr=(address, 0))``
    (``Connection.get_component_candidates``). The loop instance's method is wrapped so
    that a bind to port 0 tries the ports of the range instead, in random order. Other
    port-0 UDP binds on the same loop land in the range too, which is harmless.
    """
    host_addresses = (
        _fixed_host_addresses(settings.host_addresses)
        if settings.host_addresses
        else _ORIGINAL_GET_HOST_ADDRESSES
    )
    setattr(aioice.ice, _HOST_ADDRESSES_HOOK, host_addresses)

    current = getattr(loop, "create_datagram_endpoint")  # noqa: B009 - may be our wrapper
    if isinstance(current, _PortRangeBinder):
        current.port_range = settings.port_range
    elif settings.port_range is not None:
        setattr(loop, "create_datagram_endpoint", _PortRangeBinder(current, settings.port_range))  # noqa: B010


def _fixed_host_addresses(addresses: tuple[str, ...]) -> Callable[[bool, bool], list[str]]:
    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [address for address in addresses if (use_ipv6 if ":" in address else use_ipv4)]

    return get_host_addresses


class _PortRangeBinder:
    """Stands in for ``loop.create_datagram_endpoint``; port-0 binds go into a range."""

    def __init__(self, original: Callable[..., Any], port_range: tuple[int, int] | None) -> None:
        self.original = original
        self.port_range = port_range

    async def __call__(
        self, protocol_factory: Callable[[], Any], *args: Any, **kwargs: Any
    ) -> Any:
        local_addr = kwargs.get("local_addr")
        if self.port_range is None or local_addr is None or local_addr[1] != 0:
            return await self.original(protocol_factory, *args, **kwargs)
        low, high = self.port_range
        ports = list(range(low, high + 1))
        random.shuffle(ports)
        for port in ports:
            kwargs["local_addr"] = (local_addr[0], port, *local_addr[2:])
            try:
                return await self.original(protocol_factory, *args, **kwargs)
            except OSError:
                continue  # in use: try the next one
        raise OSError(f"no free UDP port in {low}-{high} on {local_addr[0]}")
