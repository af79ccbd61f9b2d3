"""One guard for every URL the service reaches out to for a user (targets, sources, webhooks:
``fetch`` GETs an input, ``post`` delivers a webhook).

A face-swap service that fetches whatever URL it is given can be pointed at its own network
(SSRF). So a URL is checked before anything connects: ``https://`` to public addresses,
``http://`` only to addresses in FACEFLEET_EGRESS_ALLOW, ``s3://`` only for the deployment's
buckets (read by the caller's own client). The host is resolved here, once, and the connection
goes to the address that was checked (the Host header, SNI and the certificate check still use
the name), so a second DNS answer cannot send it elsewhere. Redirects are followed by hand,
each hop checked again before it is reached; the body is streamed to the caller's file under a
size cap and one deadline for the whole fetch. Every refusal or failure is an EgressRefused
whose message a user can be shown.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urljoin

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import HTTPError, LocationParseError
from urllib3.response import BaseHTTPResponse
from urllib3.util import parse_url

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOW_SETTING = "FACEFLEET_EGRESS_ALLOW"

_METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_METADATA_KIND = "a cloud metadata address"
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # IPv6 that a NAT64 gateway turns into IPv4
# checked in this order: the first that matches names the kind
_KINDS: tuple[tuple[str, str], ...] = (
    ("is_loopback", "a loopback address"),
    ("is_link_local", "a link-local address"),
    ("is_multicast", "a multicast address"),
    ("is_unspecified", "an unspecified address"),
    ("is_reserved", "a reserved address"),
    ("is_private", "a private address"),
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024


class EgressRefused(Exception):
    """A URL the service will not fetch, or a fetch that failed; the message is for the user."""


@dataclass(frozen=True)
class EgressPolicy:
    max_bytes: int
    allow: tuple[Network, ...] = ()  # reachable although not public (and by http://)
    timeout_s: float = 30.0  # for the whole fetch, redirects and body included
    max_redirects: int = 5
    allowed_s3_buckets: frozenset[str] = frozenset()
    ca_bundle: str | None = None  # None: the system's trust store


@dataclass(frozen=True)
class Fetched:
    size: int  # bytes written to the caller's file
    content_type: str | None
    url: str  # the last hop's, after redirects


@dataclass(frozen=True)
class _Target:
    """An http(s) URL that passed the checks, with the addresses it may be reached at."""

    scheme: str
    host: str  # for SNI and the certificate check: IDNA, no brackets
    host_header: str
    port: int
    request_uri: str
    addresses: tuple[Address, ...]


def parse_allow(text: str) -> tuple[Network, ...]:
    """The networks in FACEFLEET_EGRESS_ALLOW (comma-separated CIDRs; a bare address is a /32
    or /128). Host bits set (``10.1.2.3/8``) are refused as the likely typo they are."""
    networks = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            networks.append(ipaddress.ip_network(item))
        except ValueError as exc:
            raise ValueError(f"{ALLOW_SETTING}: {item!r} is not a network in CIDR notation ({exc})") from None
    return tuple(networks)


def parse_s3_url(url: str, allowed_buckets: frozenset[str], *, what: str = "url") -> tuple[str, str]:
    """``(bucket, key)`` of an ``s3://bucket/key`` URL whose bucket the deployment reads from.
    The key is taken as written (no percent-decoding), as the AWS CLI does."""
    bucket, _, key = url[5:].partition("/") if url[:5].lower() == "s3://" else ("", "", "")
    if not bucket or not key:
        raise EgressRefused(f"{what} is not a valid s3:// URL (s3://bucket/key)")
    if bucket not in allowed_buckets:
        raise EgressRefused(f"{what}: the bucket {bucket} is not one this service reads from")
    return bucket, key


def check_url(url: str, policy: EgressPolicy, *, what: str = "url") -> None:
    """Refuse ``url`` now if ``fetch`` (or, for s3://, the caller's client) would refuse it
    before connecting: the answer at submission time. DNS may answer differently later, so
    ``fetch`` checks again."""
    if url[:5].lower() == "s3://":
        parse_s3_url(url, policy.allowed_s3_buckets, what=what)
    else:
        _target(url, policy, what)


def fetch(url: str, out: BinaryIO, policy: EgressPolicy, *, what: str = "url") -> Fetched:
    """GET an http(s) ``url`` into ``out``, following redirects; each hop is checked before it
    is reached. On refusal ``out`` may hold a part of the body (never more than the cap);
    errors in writing to ``out`` are the caller's and pass through as they are."""
    deadline = _Deadline(
        time.monotonic() + policy.timeout_s, f"{what} did not answer within {policy.timeout_s:g} s"
    )
    subject = what
    for _ in range(policy.max_redirects + 1):
        target = _target(url, policy, subject)
        with _exchange(target, policy, deadline, what) as response:
            if 200 <= response.status < 300:
                size = _copy(response, out, policy.max_bytes, deadline, what)
                return Fetched(size, response.headers.get("Content-Type"), url)
            location = response.headers.get("Location") if response.status in _REDIRECTS else None
            if not location:
                raise EgressRefused(f"{what} answered {response.status}")
        try:
            url = urljoin(url, location)
        except ValueError:
            raise EgressRefused(f"{what} (after a redirect) is not a valid URL") from None
        subject = f"{what} (after a redirect)"
    raise EgressRefused(f"{what} redirects more than {policy.max_redirects} times")


def post(url: str, body: bytes, headers: dict[str, str], policy: EgressPolicy, *, what: str = "url") -> int:
    """POST ``body`` to an http(s) ``url`` (checked now, whatever it was at submission);
    returns the answer's status. Redirects are not followed (a webhook receiver answers)."""
    deadline = _Deadline(
        time.monotonic() + policy.timeout_s, f"{what} did not answer within {policy.timeout_s:g} s"
    )
    with _exchange(_target(url, policy, what), policy, deadline, what, body, headers) as response:
        _copy(response, io.BytesIO(), policy.max_bytes, deadline, what)  # the answer is read, and dropped
        return int(response.status)


# ---------------------------------------------------------------------------- the checks


def _target(url: str, policy: EgressPolicy, subject: str) -> _Target:
    try:
        parts = parse_url(url)
    except LocationParseError:
        raise EgressRefused(f"{subject} is not a valid URL") from None
    if parts.scheme not in _DEFAULT_PORTS:
        raise EgressRefused(
            f"{subject}: {parts.scheme or 'scheme-less'}: URLs are not allowed "
            f"(only https://, or http:// to addresses in {ALLOW_SETTING})"
        )
    if parts.auth is not None:
        raise EgressRefused(f"{subject} contains a user name or password")
    if not parts.host:
        raise EgressRefused(f"{subject} names no host")
    host, port = parts.host.strip("[]"), parts.port or _DEFAULT_PORTS[parts.scheme]
    host_header = parts.host if port == _DEFAULT_PORTS[parts.scheme] else f"{parts.host}:{port}"
    addresses = _resolve(host, port, subject)
    literal = _is_literal(host)
    for address in addresses:
        _authorize(address, parts.scheme, policy, subject, shown=literal)
    return _Target(
        scheme=parts.scheme,
        host=host,
        host_header=host_header,
        port=port,
        request_uri=parts.request_uri,
        addresses=addresses,
    )


def _resolve(host: str, port: int, subject: str) -> tuple[Address, ...]:
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError):  # ValueError: a name IDNA cannot encode
        answers = []
    if not answers:
        raise EgressRefused(f"{subject} names a host that was not found ({host})")
    return tuple(dict.fromkeys(ipaddress.ip_address(answer[4][0]) for answer in answers))


def _authorize(address: Address, scheme: str, policy: EgressPolicy, subject: str, *, shown: bool) -> None:
    """Refuse ``address`` unless it is public or allowed (and allowed, for http://). The
    address is named only when the user wrote it: a resolved one would tell users what
    internal names resolve to."""
    allowed = any(address in network for network in policy.allow)
    kind = _kind(address)
    if kind == _METADATA_KIND or (kind and not allowed):
        raise EgressRefused(f"{subject} resolves to {kind}" + (f" ({address})" if shown else ""))
    if scheme == "http" and not allowed:
        raise EgressRefused(f"{subject}: http:// is only allowed to addresses in {ALLOW_SETTING}")


def _kind(address: Address) -> str | None:
    """The kind of non-public address ``address`` is, in a user's words; None if public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or (
            ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in _NAT64 else None
        )
        if embedded is not None:
            return _kind(embedded)
    if address in _METADATA:
        return _METADATA_KIND
    if address in _CGNAT:
        return "a carrier-grade NAT address"
    for attribute, kind in _KINDS:
        if getattr(address, attribute):
            return kind
    return None if address.is_global else "a non-public address"


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------- the exchange


@dataclass(frozen=True)
class _Deadline:
    at: float  # time.monotonic()
    message: str  # what the user is told when it has passed

    def left(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise EgressRefused(self.message)
        return left

    def passed(self) -> bool:
        return time.monotonic() >= self.at


@contextlib.contextmanager
def _exchange(
    target: _Target,
    policy: EgressPolicy,
    deadline: _Deadline,
    what: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Iterator[BaseHTTPResponse]:
    """The answer (headers read, body not) to a GET of ``target`` (a POST of ``body``), sent
    to a checked address."""
    conn = _connect(target, policy, deadline, what)
    try:
        with _cut_off_at(deadline, conn):
            with _network_errors(deadline, what, target.host):
                conn.request(
                    "GET" if body is None else "POST",
                    target.request_uri,
                    body=body,
                    headers={**(headers or {}), "Host": target.host_header},
                    preload_content=False,
                )
                response = conn.getresponse()
            with contextlib.closing(response):  # the response holds the socket open too
                yield response
    finally:
        conn.close()


def _connect(target: _Target, policy: EgressPolicy, deadline: _Deadline, what: str) -> HTTPConnection:
    """A connection to the first of the checked addresses that answers."""
    *others, last = target.addresses
    for address in others:
        with contextlib.suppress(EgressRefused):
            return _connect_to(address, target, policy, deadline, what)
    return _connect_to(last, target, policy, deadline, what)


def _connect_to(
    address: Address, target: _Target, policy: EgressPolicy, deadline: _Deadline, what: str
) -> HTTPConnection:
    conn: HTTPConnection
    if target.scheme == "https":
        conn = HTTPSConnection(
            str(address),
            target.port,
            timeout=deadline.left(),
            cert_reqs="CERT_REQUIRED",
            ca_certs=policy.ca_bundle,
            server_hostname=target.host,  # SNI and the certificate check, against the name
        )
    else:
        conn = HTTPConnection(str(address), target.port, timeout=deadline.left())
    try:
        with _network_errors(deadline, what, target.host):
            conn.connect()
    except EgressRefused:
        conn.close()
        raise
    return conn


def _copy(response: BaseHTTPResponse, out: BinaryIO, max_bytes: int, deadline: _Deadline, what: str) -> int:
    too_large = EgressRefused(f"{what} is larger than {max_bytes} bytes")
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise too_large
    written = 0
    while True:
        with _network_errors(deadline, what, None):
            chunk = response.read(_CHUNK)
        if not chunk:
            break
        if written + len(chunk) > max_bytes:
            raise too_large
        out.write(chunk)
        written += len(chunk)
    if deadline.passed():  # the cut-off looks like the end of a body that has no length
        raise EgressRefused(deadline.message)
    return written


@contextlib.contextmanager
def _cut_off_at(deadline: _Deadline, conn: HTTPConnection) -> Iterator[None]:
    """Shut the connection's socket down when the deadline comes: a peer that trickles bytes
    (each read well within the read timeout) is stopped on time too. What the timer's thread
    shuts down is a duplicate descriptor, held until the block ends: that leaves the TLS state
    alone, and the number cannot meanwhile have been reused for another file."""
    assert conn.sock is not None  # connected
    duplicate = socket.fromfd(conn.sock.fileno(), conn.sock.family, conn.sock.type)
    lock, live = threading.Lock(), True

    def cut() -> None:
        with lock, contextlib.suppress(OSError):
            if live:
                duplicate.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(max(deadline.at - time.monotonic(), 0.0), cut)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        with lock:
            live = False
            duplicate.close()


@contextlib.contextmanager
def _network_errors(deadline: _Deadline, what: str, host: str | None) -> Iterator[None]:
    """Network and protocol failures as EgressRefused; a cut-off at the deadline as a timeout."""
    try:
        yield
    except (OSError, HTTPError, http.client.HTTPException) as exc:
        if deadline.passed():
            raise EgressRefused(deadline.message) from exc
        place = f"could not fetch from {host}" if host else "the connection broke off"
        raise EgressRefused(f"{what}: {place} ({_reason(exc)})") from exc


def _reason(exc: BaseException) -> str:
    """The innermost cause, in a few words that name no address."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"its certificate was refused: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or type(exc).__name__}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    return type(exc).__name__
