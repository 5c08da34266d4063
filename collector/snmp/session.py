"""One SNMP conversation with one device: GET and subtree walks, values as plain Python.

pysnmp 7 (asyncio API) is used only here. Everything above this module sees numeric OID
strings and int/str values, and one exception type, SnmpError, whose message names the
device and the OID, so a failure can be stored as a `reason` without further wrapping.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pyasn1.type import univ
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    Udp6TransportTarget,
    UsmUserData,
    bulk_cmd,
    get_cmd,
    next_cmd,
)
from pysnmp.hlapi.v3arch.asyncio import auth as _auth
from pysnmp.proto import errind, rfc1902, rfc1905

log = logging.getLogger(__name__)

Version = Literal["1", "2c", "3"]
AuthProtocol = Literal["SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512", "MD5"]
PrivProtocol = Literal["AES", "AES-128", "AES-256", "DES"]

# Names as inventory.toml (and net-snmp's -a/-x) spell them -> pysnmp protocol ids.
AUTH_PROTOCOLS: dict[str, tuple[int, ...]] = {
    "MD5": _auth.USM_AUTH_HMAC96_MD5,
    "SHA": _auth.USM_AUTH_HMAC96_SHA,
    "SHA-224": _auth.USM_AUTH_HMAC128_SHA224,
    "SHA-256": _auth.USM_AUTH_HMAC192_SHA256,
    "SHA-384": _auth.USM_AUTH_HMAC256_SHA384,
    "SHA-512": _auth.USM_AUTH_HMAC384_SHA512,
}
# AES-256: net-snmp (and FortiOS) extend the localized key as in draft-blumenthal-aes-usm;
# pysnmp's plain USM_PRIV_CFB256_AES is the Cisco ("AES-256C", Reeder) variant, which
# net-snmp's snmpd rejects with a decryption error. Verified against snmpd in the tests.
PRIV_PROTOCOLS: dict[str, tuple[int, ...]] = {
    "DES": _auth.USM_PRIV_CBC56_DES,
    "AES": _auth.USM_PRIV_CFB128_AES,
    "AES-128": _auth.USM_PRIV_CFB128_AES,
    "AES-256": _auth.USM_PRIV_CFB256_AES_BLUMENTHAL,
}

# Error indications that mean "the device answered but refused our credentials".
_AUTH_ERRORS = (
    errind.UnknownUserName,
    errind.WrongDigest,
    errind.DecryptionError,
    errind.AuthenticationError,
    errind.AuthenticationFailure,
    errind.UnknownSecurityName,
    errind.UnsupportedSecurityLevel,
    errind.UnknownCommunityName,
)

# A walk longer than this is a broken agent (or a loop we did not spot), not a table.
MAX_WALK_ROWS = 200_000
# Varbinds per GET PDU: small enough to stay under a 1500-byte MTU answer for most values.
GET_CHUNK = 20


class SnmpError(Exception):
    """An SNMP request failed; `str()` names the device and the OID."""

    def __init__(self, device: str, oid: str, message: str, timed_out: bool = False) -> None:
        super().__init__(f"{device}: SNMP {oid}: {message}")
        self.device = device
        self.oid = oid
        self.message = message
        self.timed_out = timed_out  # no answer at all (rather than an error answer)


@dataclass(frozen=True)
class SnmpAuth:
    """Credentials for one device. Secrets are left out of repr so they never reach a log."""

    version: Version = "2c"
    community: str | None = field(default=None, repr=False)
    user: str | None = None
    auth_protocol: AuthProtocol | None = None
    auth_key: str | None = field(default=None, repr=False)
    priv_protocol: PrivProtocol | None = None
    priv_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.version not in ("1", "2c", "3"):
            raise ValueError(f"SNMP version must be '1', '2c' or '3', not {self.version!r}")
        if self.version in ("1", "2c"):
            if not self.community:
                raise ValueError(f"SNMP v{self.version} needs a community")
            return
        if not self.user:
            raise ValueError("SNMPv3 needs a user")
        if (self.auth_protocol is None) != (self.auth_key is None):
            raise ValueError("auth_protocol and auth_key go together")
        if (self.priv_protocol is None) != (self.priv_key is None):
            raise ValueError("priv_protocol and priv_key go together")
        if self.priv_protocol is not None and self.auth_protocol is None:
            raise ValueError("privacy (priv_protocol) needs authentication (auth_protocol) too")
        if self.auth_protocol is not None and self.auth_protocol not in AUTH_PROTOCOLS:
            raise ValueError(f"auth_protocol must be one of {sorted(AUTH_PROTOCOLS)}, not {self.auth_protocol!r}")
        if self.priv_protocol is not None and self.priv_protocol not in PRIV_PROTOCOLS:
            raise ValueError(f"priv_protocol must be one of {sorted(PRIV_PROTOCOLS)}, not {self.priv_protocol!r}")
        for what, key in (("auth_key", self.auth_key), ("priv_key", self.priv_key)):
            if key is not None and len(key) < 8:
                raise ValueError(f"{what} needs at least 8 characters (RFC 3414)")

    @property
    def security_level(self) -> Literal["noAuthNoPriv", "authNoPriv", "authPriv"]:
        """Derived from which keys are set; v1/v2c are always noAuthNoPriv."""
        if self.version != "3" or self.auth_protocol is None:
            return "noAuthNoPriv"
        return "authPriv" if self.priv_protocol is not None else "authNoPriv"

    def pysnmp_auth(self) -> CommunityData | UsmUserData:
        if self.version in ("1", "2c"):
            return CommunityData(self.community, mpModel=0 if self.version == "1" else 1)
        return UsmUserData(
            self.user,
            authKey=self.auth_key,
            privKey=self.priv_key,
            authProtocol=AUTH_PROTOCOLS[self.auth_protocol] if self.auth_protocol else _auth.USM_AUTH_NONE,
            privProtocol=PRIV_PROTOCOLS[self.priv_protocol] if self.priv_protocol else _auth.USM_PRIV_NONE,
        )

    def _engine_key(self) -> tuple[Any, ...]:
        # pysnmp keeps one USM entry per user name in an engine: two devices with the same
        # user name but other keys would keep replacing each other's entry mid-request.
        if self.version != "3":
            return ("community",)
        return ("usm", self.user, self.auth_protocol, self.auth_key, self.priv_protocol, self.priv_key)


class SnmpClient(Protocol):
    """What a poller needs from a session (SnmpSession, or a recorded replay in tests)."""

    device: str

    async def get(self, oids: Sequence[str]) -> dict[str, Any]: ...

    async def walk(self, prefix: str) -> list[tuple[str, Any]]: ...


class _LoopState:
    """pysnmp engines and the default request bound, one set per event loop.

    An SnmpEngine's transport dispatcher binds to the loop it first runs in, so one engine
    per process really means one per loop (a service has one loop; tests start several).
    """

    def __init__(self) -> None:
        self.engines: dict[tuple[Any, ...], SnmpEngine] = {}
        self.semaphore = asyncio.Semaphore(DEFAULT_MAX_IN_FLIGHT)


DEFAULT_MAX_IN_FLIGHT = 32
_loop_states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()


def _loop_state() -> _LoopState:
    loop = asyncio.get_running_loop()
    state = _loop_states.get(loop)
    if state is None:
        state = _loop_states[loop] = _LoopState()
    return state


def default_semaphore() -> asyncio.Semaphore:
    """The process-wide (per event loop) bound on SNMP requests in flight."""
    return _loop_state().semaphore


def close_engines() -> None:
    """Close the transports of this loop's engines (call before the loop ends, e.g. on shutdown)."""
    state = _loop_states.pop(asyncio.get_running_loop(), None)
    if state is None:
        return
    for engine in state.engines.values():
        engine.close_dispatcher()


def decode_octets(raw: bytes) -> str:
    """Printable UTF-8 as text (trailing NULs dropped: some agents C-terminate strings), else hex.

    Binary values (MACs, InetAddress, DateAndTime) thus stay usable and never put control
    characters into a string field.
    """
    text_bytes = raw.rstrip(b"\x00")
    if b"\x00" in text_bytes:
        return raw.hex()
    try:
        text = text_bytes.decode("utf-8")
    except UnicodeDecodeError:
        return raw.hex()
    if all(ch.isprintable() or ch in "\t\r\n" for ch in text):
        return text
    return raw.hex()


def to_python(value: Any) -> Any:
    """An SNMP value as int, str or None (None for noSuchObject/noSuchInstance/endOfMibView).

    Integers of every kind (Counter64, Gauge32, TimeTicks) -> int; OID and IpAddress ->
    dotted str; OctetString -> decode_octets().
    """
    if isinstance(value, (rfc1905.NoSuchObject, rfc1905.NoSuchInstance, rfc1905.EndOfMibView)):
        return None
    if isinstance(value, univ.Null):
        return None
    if isinstance(value, rfc1902.IpAddress):
        return ".".join(str(b) for b in bytes(value))
    if isinstance(value, univ.ObjectIdentifier):
        return ".".join(str(x) for x in value)
    if isinstance(value, univ.Integer):  # Integer32, Counter32/64, Gauge32, TimeTicks, Unsigned32
        return int(value)
    if isinstance(value, (rfc1902.Opaque, rfc1902.Bits)):
        return bytes(value).hex()
    if isinstance(value, univ.OctetString):
        return decode_octets(bytes(value))
    return str(value)


def oid_tuple(oid: str) -> tuple[int, ...]:
    """'1.3.6.1' (or '.1.3.6.1') -> (1, 3, 6, 1); raises ValueError for anything else."""
    text = oid.strip().lstrip(".")
    try:
        parts = tuple(int(p) for p in text.split("."))
    except ValueError:
        raise ValueError(f"not a numeric OID: {oid!r}") from None
    if len(parts) < 2 or any(p < 0 for p in parts):
        raise ValueError(f"not a numeric OID: {oid!r}")
    return parts


def oid_str(oid: Sequence[int]) -> str:
    return ".".join(str(x) for x in oid)


class SnmpSession:
    """GET and walk against one device, with pysnmp's engine shared per event loop.

    `semaphore` bounds requests in flight across all sessions that share it (default: one
    bound for the whole process), so a collector polling 50 devices never floods a site link.
    """

    def __init__(
        self,
        host: str,
        port: int = 161,
        auth: SnmpAuth | None = None,
        *,
        timeout_s: float = 3.0,
        retries: int = 2,
        max_repetitions: int = 25,
        semaphore: asyncio.Semaphore | None = None,
        device: str | None = None,
    ) -> None:
        if auth is None:
            raise ValueError("auth is required (SnmpAuth(version='2c', community=...))")
        if timeout_s <= 0 or retries < 0 or max_repetitions < 1:
            raise ValueError("timeout_s must be > 0, retries >= 0, max_repetitions >= 1")
        self.host = host
        self.port = port
        self.auth = auth
        self.timeout_s = timeout_s
        self.retries = retries
        self.max_repetitions = max_repetitions
        self.device = device or (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        self._semaphore = semaphore
        self._auth_data = auth.pysnmp_auth()
        self._target: UdpTransportTarget | Udp6TransportTarget | None = None

    def __repr__(self) -> str:
        return f"SnmpSession({self.device!r}, host={self.host!r}, port={self.port}, auth={self.auth!r})"

    # ------------------------------------------------------------------ plumbing

    def _engine(self) -> SnmpEngine:
        state = _loop_state()
        key = self.auth._engine_key()
        engine = state.engines.get(key)
        if engine is None:
            engine = state.engines[key] = SnmpEngine()
        return engine

    async def _transport(self) -> UdpTransportTarget | Udp6TransportTarget:
        if self._target is None:
            cls = Udp6TransportTarget if ":" in self.host else UdpTransportTarget
            try:
                self._target = await cls.create((self.host, self.port), timeout=self.timeout_s, retries=self.retries)
            except Exception as exc:  # pysnmp raises PySnmpError for an unresolvable name
                raise SnmpError(self.device, "-", f"bad address {self.host}:{self.port}: {exc}") from exc
        return self._target

    def _error(self, oid: str, indication: Any) -> SnmpError:
        if isinstance(indication, errind.RequestTimedOut):
            tries = self.retries + 1
            return SnmpError(
                self.device,
                oid,
                f"timeout: no answer within {self.timeout_s:g} s x {tries} tries "
                f"(device down, or wrong community/credentials)",
                timed_out=True,
            )
        if isinstance(indication, _AUTH_ERRORS):
            return SnmpError(self.device, oid, f"authentication failed: {indication}")
        return SnmpError(self.device, oid, str(indication))

    async def _request(self, kind: str, oids: Sequence[str]) -> tuple[Any, Any, int, Sequence[Any]]:
        """Send one PDU; return (errorIndication, errorStatus, errorIndex, varbinds)."""
        engine = self._engine()
        target = await self._transport()
        var_binds = [ObjectType(ObjectIdentity(oid)) for oid in oids]
        semaphore = self._semaphore or default_semaphore()
        async with semaphore:
            try:
                if kind == "get":
                    result = await get_cmd(engine, self._auth_data, target, ContextData(), *var_binds, lookupMib=False)
                elif kind == "next":
                    # Our own guard below checks increase; pysnmp's would turn it into an opaque error.
                    result = await next_cmd(
                        engine, self._auth_data, target, ContextData(), *var_binds,
                        lookupMib=False, ignoreNonIncreasingOid=True,
                    )
                else:
                    result = await bulk_cmd(
                        engine, self._auth_data, target, ContextData(), 0, self.max_repetitions, *var_binds,
                        lookupMib=False, ignoreNonIncreasingOid=True,
                    )
            except SnmpError:
                raise
            except Exception as exc:  # pysnmp raises for malformed answers or local config problems
                raise SnmpError(self.device, oids[0] if oids else "-", f"{type(exc).__name__}: {exc}") from exc
        error_indication, error_status, error_index, answer = result
        return error_indication, error_status, int(error_index or 0), answer

    # ------------------------------------------------------------------ public

    async def get(self, oids: Sequence[str]) -> dict[str, Any]:
        """GET the OIDs; returns {oid: value} for those the device has (noSuch* are absent)."""
        wanted = [oid_str(oid_tuple(o)) for o in oids]
        out: dict[str, Any] = {}
        for start in range(0, len(wanted), GET_CHUNK):
            await self._get_chunk(wanted[start:start + GET_CHUNK], out)
        return out

    async def _get_chunk(self, chunk: list[str], out: dict[str, Any]) -> None:
        pending = list(chunk)
        while pending:
            indication, status, index, answer = await self._request("get", pending)
            if indication:
                if isinstance(indication, errind.TooBig) and len(pending) > 1:
                    half = len(pending) // 2
                    await self._get_chunk(pending[:half], out)
                    await self._get_chunk(pending[half:], out)
                    return
                raise self._error(pending[0] if len(pending) == 1 else ",".join(pending), indication)
            if status:
                name = status.prettyPrint() if hasattr(status, "prettyPrint") else str(status)
                bad = pending[index - 1] if 0 < index <= len(pending) else pending[0]
                if int(status) == 2 and 0 < index <= len(pending):
                    # v1 has no noSuchObject: the whole PDU fails with noSuchName on the first
                    # missing OID. Treat that one as absent and ask again for the rest.
                    pending.remove(bad)
                    continue
                if int(status) == 1 and len(pending) > 1:  # tooBig as an error status (v1)
                    half = len(pending) // 2
                    await self._get_chunk(pending[:half], out)
                    await self._get_chunk(pending[half:], out)
                    return
                raise SnmpError(self.device, bad, f"error status {name}")
            for oid, value in answer:
                converted = to_python(value)
                if converted is not None:
                    out[oid_str(tuple(oid))] = converted
            return

    async def get_next(self, oids: Sequence[str]) -> dict[str, tuple[str, Any]]:
        """One GETNEXT: {asked oid: (next oid, value)}; an OID past the end of the MIB is absent.

        Used to ask whether a device has anything under a subtree (a MIB it implements) in one
        round trip. A v1 agent fails the whole PDU with noSuchName for an OID at the end of its
        MIB; that one is dropped and the rest asked again.
        """
        pending = [oid_str(oid_tuple(o)) for o in oids]
        out: dict[str, tuple[str, Any]] = {}
        while pending:
            indication, status, index, answer = await self._request("next", pending)
            if indication:
                raise self._error(",".join(pending), indication)
            if status:
                if int(status) == 2 and 0 < index <= len(pending):
                    pending.pop(index - 1)
                    continue
                name = status.prettyPrint() if hasattr(status, "prettyPrint") else str(status)
                raise SnmpError(self.device, ",".join(pending), f"error status {name}")
            for asked, (oid, value) in zip(pending, answer):
                if isinstance(value, rfc1905.EndOfMibView):
                    continue
                got = tuple(oid)
                if got > oid_tuple(asked):
                    out[asked] = (oid_str(got), to_python(value))
            return out
        return out

    async def walk(self, prefix: str) -> list[tuple[str, Any]]:
        """All (oid, value) under `prefix`, in agent order: GETBULK for v2c/v3, GETNEXT for v1.

        Stops at the end of the subtree or the MIB. An agent that answers with an OID not
        greater than the one asked for would loop forever; that raises SnmpError instead.
        """
        root = oid_tuple(prefix)
        root_text = oid_str(root)
        rows: list[tuple[str, Any]] = []
        last = root
        use_bulk = self.auth.version != "1"
        repetitions_cut = False
        while True:
            request_oid = oid_str(last)
            indication, status, index, answer = await self._request("bulk" if use_bulk else "next", [request_oid])
            if indication:
                if isinstance(indication, errind.TooBig) and use_bulk and self.max_repetitions > 1 and not repetitions_cut:
                    # The agent cannot fit our repetitions in one datagram: ask for fewer from now on.
                    self.max_repetitions = max(1, self.max_repetitions // 2)
                    repetitions_cut = True
                    continue
                raise self._error(request_oid, indication)
            repetitions_cut = False
            if status:
                if int(status) == 2 and not use_bulk:  # v1 noSuchName: past the end of the MIB
                    return rows
                if int(status) == 1 and use_bulk and self.max_repetitions > 1:  # tooBig (status form)
                    self.max_repetitions = max(1, self.max_repetitions // 2)
                    continue
                name = status.prettyPrint() if hasattr(status, "prettyPrint") else str(status)
                raise SnmpError(self.device, request_oid, f"error status {name} walking {root_text}")
            if not answer:
                return rows
            for oid, value in answer:
                got = tuple(oid)
                if isinstance(value, rfc1905.EndOfMibView):
                    return rows
                if got[: len(root)] != root or len(got) == len(root):
                    return rows
                if got <= last:
                    raise SnmpError(
                        self.device, oid_str(got), f"OID not increasing (after {oid_str(last)}) walking {root_text}"
                    )
                last = got
                converted = to_python(value)
                if converted is not None:
                    rows.append((oid_str(got), converted))
                if len(rows) > MAX_WALK_ROWS:
                    raise SnmpError(self.device, root_text, f"walk returned more than {MAX_WALK_ROWS} rows")
