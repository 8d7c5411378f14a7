"""When may a visitor load a model file *without* the safety checks?

Only when the operator says so (``ACTVIZ_ALLOW_TRUST=1``), or when the server
provably serves one local user: it listens on a loopback address only, the
connection comes from this machine, the page was asked for by a plain
loopback name, and no proxy stands in between. Any proxy header at all
(Forwarded, X-Forwarded-*, X-Real-IP, Via ...) hides the switch, because a
reverse proxy on the same machine (nginx ``proxy_pass http://127.0.0.1:8501``)
makes every remote visitor look local otherwise.
"""

from __future__ import annotations

from typing import Mapping

LOOPBACK_ADDRESSES = frozenset({"localhost", "127.0.0.1", "::1"})
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1"})
PROXY_HEADERS = ("forwarded", "via", "x-real-ip", "true-client-ip", "cf-connecting-ip", "client-ip", "fastly-client-ip")


def trust_switch_allowed(
    *, operator_allows: bool, server_address: str | None, host: str | None, remote_loopback: bool,
    headers: Mapping[str, str],
) -> bool:
    """True if the "I trust this file" switch may be shown for this request.

    ``server_address``: the address the server listens on (Streamlit's
    ``server.address``; empty means every interface); ``host``: the request's
    Host header; ``remote_loopback``: the connection's peer is this machine;
    ``headers``: all request headers (names in any case).
    """
    if operator_allows:
        return True
    if (server_address or "").strip().lower() not in LOOPBACK_ADDRESSES or not remote_loopback:
        return False
    names = {str(name).lower() for name in headers}
    if any(name in PROXY_HEADERS or name.startswith("x-forwarded") for name in names):
        return False
    host = (host or "").strip().lower()
    name, _, port = host.partition(":")
    return name in LOOPBACK_HOSTS and (port == "" or port.isdigit())
