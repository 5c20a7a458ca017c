"""Loaded by Python at start-up when this folder is on ``PYTHONPATH``: outbound connections are refused.

The test helpers (``tests/support/bundle_runs.py``) put this folder first on the ``PYTHONPATH`` of the bundle
subprocesses, so a workflow that tried to download anything (weights, a tokenizer, NLTK data, telemetry)
fails or logs instead of reaching the network. Only loopback (127.0.0.0/8, ::1) and Unix sockets are
allowed, which keeps ``torchrun`` rendezvous and local test servers working. Name lookups are refused
for any host but this machine's own names. Each refused attempt is appended to the file named by
``HISTGEN_NO_NETWORK_LOG`` (when set) so that a test can show that none was made.

This guards Python's ``socket`` module only; native libraries that open their own sockets bypass it.
"""

from __future__ import annotations

import ipaddress
import os
import socket

_LOCAL_NAMES = {"", "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", socket.gethostname()}


class OutboundConnectionError(OSError):
    """A test subprocess tried to reach a non-loopback address."""


def _record(what: str) -> None:
    log = os.environ.get("HISTGEN_NO_NETWORK_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"pid {os.getpid()}: {what}\n")


def _is_loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return False
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _guard(address: object, family: int) -> None:
    if family not in (socket.AF_INET, socket.AF_INET6):
        return  # Unix sockets and the like stay on this machine
    host = address[0] if isinstance(address, tuple) and address else address
    if not _is_loopback(host):
        _record(f"connect to {address!r}")
        raise OutboundConnectionError(f"outbound connection to {address!r} refused in tests (loopback only)")


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_sendto = socket.socket.sendto
_getaddrinfo = socket.getaddrinfo


def _guarded_connect(self, address):
    _guard(address, self.family)
    return _connect(self, address)


def _guarded_connect_ex(self, address):
    _guard(address, self.family)
    return _connect_ex(self, address)


def _guarded_sendto(self, data, *args):
    _guard(args[-1], self.family)
    return _sendto(self, data, *args)


def _guarded_getaddrinfo(host, *args, **kwargs):
    if host is not None and not _is_loopback(host):
        _record(f"name lookup of {host!r}")
        raise socket.gaierror(socket.EAI_NONAME, f"name lookup of {host!r} refused in tests (no network)")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
socket.socket.sendto = _guarded_sendto
socket.getaddrinfo = _guarded_getaddrinfo
os.environ.setdefault("HISTGEN_NO_NETWORK_ACTIVE", "1")
