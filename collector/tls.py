"""A self-signed certificate and key for the collector's HTTPS, for a start before a real CA.

The agents trust it by pinning the certificate file itself (`--ca-file`), so it must name
every host name and address they use to reach the collector (subjectAltName).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

DEFAULT_DAYS = 825  # the longest validity clients such as browsers still accept


class TlsError(RuntimeError):
    """The pair cannot be made (missing library, existing files, bad name)."""


def _san_entries(names: list[str]) -> list[object]:
    from cryptography import x509

    entries: list[object] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return entries


def make_self_signed(cert_path: Path, key_path: Path, names: list[str], days: int = DEFAULT_DAYS, overwrite: bool = False) -> None:
    """Write a new EC P-256 key (mode 0600) and a self-signed certificate for `names` (DNS names or IPs)."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as exc:  # a collector extra; say what to install instead of a traceback
        raise TlsError("making a certificate needs the Python package 'cryptography' (pip install cryptography)") from exc
    if not names:
        raise TlsError("give at least one host name or IP address the agents use to reach the collector")
    for path in (cert_path, key_path):
        if path.exists() and not overwrite:
            raise TlsError(f"{path} exists; not overwriting it (use --force)")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0]), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nettvakt")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # tolerate clocks slightly behind
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(_san_entries(names)), critical=False)  # type: ignore[arg-type]
        # CA:TRUE so that OpenSSL accepts it as its own trust anchor when agents pin it.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    # The key is created readable by its owner alone, never briefly world-readable.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
