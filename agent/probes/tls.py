"""TLS for the http probe: client contexts built once and shared, the peer's certificate, its expiry.

Stdlib only: `cert_not_after` reads the notAfter date from DER itself, because `getpeercert()`
gives nothing for a certificate that was not verified (verify_tls = false).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import os
import ssl
import time
from contextlib import contextmanager
from typing import Any, Iterator

from agent.probes.kind import ProbeFailed
from agent.probes.net import failure_reason


# The DER certificate of the peer of the running http probe. The probe sets a fresh list; the
# handshake appends to it. aiohttp may release the connection (and with it the transport) as soon
# as a small body has arrived, so the certificate is taken at the handshake, through the
# documented `SSLContext.sslobject_class` hook, instead of from the response. A context variable,
# because the SSL contexts are shared by concurrent probes: the transport's callbacks run in a
# copy of the context of the task that opened the connection, the probe's own.
_PEER_CERTS: contextvars.ContextVar[list[bytes] | None] = contextvars.ContextVar("nettvakt_peer_certs", default=None)


class _CertRecordingSSLObject(ssl.SSLObject):
    def do_handshake(self) -> None:
        super().do_handshake()  # raises SSLWantReadError until the handshake is done
        certs = _PEER_CERTS.get()
        der = self.getpeercert(binary_form=True)
        if der and certs is not None:
            certs.append(der)


# Built once per (verify_tls, ca_file and its mtime and size), and again after SSL_CONTEXT_MAX_AGE_S
# so updated system CAs are used: each context holds the parsed CA bundle (about 2 MB for the
# system store), and building one per probe made an agent with https probes grow steadily.
SSL_CONTEXT_MAX_AGE_S = 3600.0
_SSL_CONTEXTS_MAX = 8
_ssl_contexts: dict[tuple[Any, ...], tuple[float, ssl.SSLContext]] = {}


def ssl_context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    """A client context that records the peer's certificate (`peer_certificates`), shared while its CA file is unchanged."""
    ca_file = ca_file if verify else None
    stamp: tuple[int, int] | None = None
    if ca_file is not None:
        try:
            st = os.stat(ca_file)
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            pass  # not cached: _new_ssl_context raises the error the probe reports
    key = (verify, ca_file, stamp)
    now = time.monotonic()
    cached = _ssl_contexts.get(key)
    if cached is not None and now - cached[0] < SSL_CONTEXT_MAX_AGE_S:
        return cached[1]
    context = _new_ssl_context(verify, ca_file)
    if ca_file is None or stamp is not None:
        _ssl_contexts.pop(key, None)
        if len(_ssl_contexts) >= _SSL_CONTEXTS_MAX:
            del _ssl_contexts[next(iter(_ssl_contexts))]  # the oldest
        _ssl_contexts[key] = (now, context)
    return context


def _new_ssl_context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies peer and host name by default
    context.sslobject_class = _CertRecordingSSLObject
    if verify:
        try:
            if ca_file is not None:
                context.load_verify_locations(cafile=ca_file)
            else:
                context.load_default_certs()
        except (OSError, ssl.SSLError) as exc:
            raise ProbeFailed(f"ca_file unusable: {failure_reason(exc)}") from exc
    else:
        # Only when the spec says verify_tls = false (e.g. a printer's self-signed web UI).
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _der_item(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER item at `pos`."""
    tag, length = der[pos], der[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(der[pos : pos + n], "big")
        pos += n
    return tag, pos, pos + length


def cert_not_after(der: bytes) -> dt.datetime:
    """notAfter of an X.509 certificate in DER form (stdlib only; getpeercert() gives nothing unverified)."""
    _, start, _ = _der_item(der, 0)  # Certificate
    _, pos, _ = _der_item(der, start)  # TBSCertificate
    tag, _, end = _der_item(der, pos)
    if tag == 0xA0:  # [0] version, optional
        pos = end
    for _ in range(3):  # serialNumber, signature, issuer
        pos = _der_item(der, pos)[2]
    _, validity, _ = _der_item(der, pos)
    not_before_end = _der_item(der, validity)[2]
    tag, start, end = _der_item(der, not_before_end)
    text = der[start:end].decode("ascii").rstrip("Z")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSS: 50-99 are 19xx (RFC 5280)
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    return dt.datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=dt.timezone.utc)




@contextmanager
def peer_certificates() -> Iterator[list[bytes]]:
    """The DER certificates of the TLS peers that connections opened inside the block present."""
    certs: list[bytes] = []
    token = _PEER_CERTS.set(certs)
    try:
        yield certs
    finally:
        _PEER_CERTS.reset(token)
