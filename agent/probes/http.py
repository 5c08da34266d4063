"""The http probe: one request, timed to the response headers and to the end of the body, and the certificate's days left."""

from __future__ import annotations

import datetime as dt
import time
import urllib.parse
from types import MappingProxyType
from typing import Any, Mapping

import aiohttp

from agent.probes.checks import ProbeConfigError, check_bool, check_path
from agent.probes.kind import Fields, ProbeFailed, ProbeKind
from agent.probes.net import failure_reason, ms, short_reason
from agent.probes.tls import cert_not_after, peer_certificates, ssl_context
from agent.schema import FieldSpec

HTTP_MAX_BODY = 16 * 1024 * 1024  # read (and count) at most this much; a probe is not a download
HTTP_METHODS = ("GET", "HEAD", "OPTIONS", "POST")


def _expected(status: int, expect: Any) -> bool:
    if expect is None:
        return 200 <= status < 400
    return status in (expect if isinstance(expect, list) else [expect])


async def probe_http(target: str, params: Mapping[str, Any], timeout_s: float) -> Fields:
    https = target.lower().startswith("https:")
    context = ssl_context(bool(params.get("verify_tls", True)), params.get("ca_file")) if https else None
    connector = aiohttp.TCPConnector(ssl=context if context is not None else True, force_close=True, limit=1)
    fields: Fields = {}
    with peer_certificates() as peer_certs:
        try:
            # trust_env=False: measure the target itself, not a proxy in between.
            async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
                t0 = time.perf_counter()
                # Redirects are not followed: a 3xx is the target's answer (expected by default).
                async with session.request(params.get("method", "GET"), target, allow_redirects=False) as resp:
                    fields["status_code"] = float(resp.status)
                    fields["ttfb_ms"] = ms(time.perf_counter() - t0)
                    if peer_certs:
                        left = cert_not_after(peer_certs[-1]) - dt.datetime.now(dt.timezone.utc)
                        fields["cert_days_left"] = round(left.total_seconds() / 86400.0, 3)
                    size = 0
                    async for chunk in resp.content.iter_chunked(65536):
                        size += len(chunk)
                        if size >= HTTP_MAX_BODY:
                            break
                    fields["total_ms"] = ms(time.perf_counter() - t0)
                    fields["bytes"] = float(size)
        except aiohttp.ClientConnectorCertificateError as exc:
            error = exc.certificate_error
            detail = getattr(error, "verify_message", None) or str(error)  # e.g. "self-signed certificate"
            raise ProbeFailed(short_reason(f"tls: certificate verify failed: {detail}")) from exc
        except aiohttp.ClientConnectorError as exc:
            raise ProbeFailed(failure_reason(exc.os_error), fields) from exc
        except aiohttp.ClientError as exc:
            raise ProbeFailed(short_reason(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__), fields) from exc
    status = int(fields["status_code"])
    if not _expected(status, params.get("expect_status")):
        raise ProbeFailed(f"status {status}", fields)
    return fields


def _check_target(target: str, where: str) -> None:
    try:
        url = urllib.parse.urlsplit(target)
        ok = url.scheme in ("http", "https") and bool(url.hostname)
        url.port  # raises ValueError on a bad port
    except ValueError:
        ok = False
    if not ok:
        raise ProbeConfigError(f"{where}: expected an http:// or https:// URL, got {target!r}")


def _check_method(value: Any, where: str) -> None:
    if value not in HTTP_METHODS:
        raise ProbeConfigError(f"{where}: expected one of {', '.join(HTTP_METHODS)}, got {value!r}")


def _check_expect_status(value: Any, where: str) -> None:
    codes = value if isinstance(value, list) else [value]
    if not codes or any(isinstance(c, bool) or not isinstance(c, int) or not 100 <= c <= 599 for c in codes):
        raise ProbeConfigError(f"{where}: expected an HTTP status (100-599) or a list of them, got {value!r}")


def _check_tls_params(params: Mapping[str, Any], where: str) -> None:
    if params.get("verify_tls") is False and "ca_file" in params:
        raise ProbeConfigError(f"{where}.ca_file: has no effect with verify_tls = false; remove one")


KIND = ProbeKind(
    name="http",
    run=probe_http,
    check_target=_check_target,
    latency_field="ttfb_ms",
    target_host=lambda url: urllib.parse.urlsplit(url).hostname or url,
    answers_as_application=True,
    fields=(
        FieldSpec("status_code", "count", "http: HTTP status"),
        FieldSpec("ttfb_ms", "ms", "http: time to the response headers"),
        FieldSpec("total_ms", "ms", "http: time to the end of the body"),
        FieldSpec("bytes", "bytes", "http: body size"),
        FieldSpec("cert_days_left", "days", "http (https): days until the server certificate expires"),
    ),
    help="one HTTP(S) request, redirects not followed: time to the headers and to the end of the body, the certificate's days left",
    params=MappingProxyType({"method": _check_method, "expect_status": _check_expect_status, "verify_tls": check_bool, "ca_file": check_path}),
    check_params=_check_tls_params,
)
