"""The egress guard reaches only addresses it checked, at the address it checked, within its caps.

Every exchange is real, with servers on 127.0.0.x; a spy on urllib3's connect fails any test
that would reach another address, and names that are not real resolve through a stand-in
for the system's resolver.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import urllib3.util.connection
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from facefleet.egress import EgressPolicy, EgressRefused, check_url, fetch, parse_allow, parse_s3_url

Answer = Callable[[BaseHTTPRequestHandler], None]
LOOPBACK = parse_allow("127.0.0.0/8")
CLIP = bytes(range(256)) * 800  # 204,800 bytes


class Server:
    """An HTTP(S) server on a loopback address that answers from ``routes`` (path: answer)
    and records each request's path and Host header."""

    def __init__(self, routes: dict[str, Answer], host: str, tls: ssl.SSLContext | None) -> None:
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5  # a stalled client cannot keep the handler's thread

            def setup(self) -> None:
                if tls is not None:
                    self.request.settimeout(self.timeout)
                    self.request = tls.wrap_socket(self.request, server_side=True)
                super().setup()

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers["Host"]))
                routes.get(self.path, _status(404))(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = _QuietServer((host, 0), Handler)
        self.host, self.port = host, self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str, *, scheme: str = "http", name: str | None = None) -> str:
        return f"{scheme}://{name or self.host}:{self.port}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client the guard cut off, or a TLS handshake it refused


def _body(data: bytes, *, length: bool = True) -> Answer:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "video/mp4")
        if length:
            handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)  # HTTP/1.0: the body ends when the connection closes

    return answer


def _redirect(location: str) -> Answer:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer


def _status(code: int) -> Answer:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(code)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer


def _trickle(*, in_headers: bool) -> Answer:
    """One byte every 50 ms, for at most 5 s: each read is quick, the whole never ends in time."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        head = b"HTTP/1.0 200 OK\r\n" + (b"X-Slow: " if in_headers else b"Content-Length: 100\r\n\r\n")
        with contextlib.suppress(OSError):
            handler.wfile.write(head)
            for _ in range(100):
                handler.wfile.write(b"a")
                time.sleep(0.05)

    return answer


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(
        routes: dict[str, Answer], *, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
    ) -> Server:
        servers.append(Server(routes, host, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every address urllib3 connects to; any but 127.0.0.x fails the test before it is tried."""
    made: list[tuple[str, int]] = []
    real = urllib3.util.connection.create_connection

    def spy(address: tuple[str, int], *args: object, **kwargs: object) -> socket.socket:
        made.append(address)
        assert address[0].startswith("127.0.0."), f"tried to connect to {address}"
        return real(address, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(urllib3.util.connection, "create_connection", spy)
    return made


_real_getaddrinfo = socket.getaddrinfo


class Dns:
    """Made-up names for getaddrinfo: each lookup takes the next answer (the last one stays);
    an empty answer is "not found". Other names go to the system's resolver."""

    def __init__(self) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: list[str] = []

    def getaddrinfo(self, host: str, port: int, *args: object, **kwargs: object) -> list[tuple]:
        if host not in self.answers:
            return _real_getaddrinfo(host, port, *args, **kwargs)  # type: ignore[arg-type]
        self.lookups.append(host)
        answers = self.answers[host]
        addresses = answers.pop(0) if len(answers) > 1 else answers[0]
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [_addrinfo(address, port) for address in addresses]


def _addrinfo(address: str, port: int) -> tuple:
    if ipaddress.ip_address(address).version == 6:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Dns:
    resolver = Dns()
    monkeypatch.setattr(socket, "getaddrinfo", resolver.getaddrinfo)
    return resolver


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, str, list[str]]:
    """A server context for media.test, its CA's file (to trust), and the SNI names it saw."""
    now = datetime.now(UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "FaceFleet test CA")])

    def builder(subject: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
        )

    ca = (
        builder(ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "media.test")]), key.public_key())
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("media.test")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    names: list[str] = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment,misc]
    return context, str(tmp_path / "ca.pem"), names


def _policy(**overrides: object) -> EgressPolicy:
    return EgressPolicy(**{"max_bytes": 1_000_000, "timeout_s": 5.0, **overrides})  # type: ignore[arg-type]


def _message(subject: str, reason: str) -> str:
    """A pattern for the message about ``subject``: reasons that start with a colon follow it at once."""
    return "^" + re.escape(subject + ("" if reason.startswith(":") else " ") + reason)


# ---------------------------------------------------------------------------- fetches


def test_an_allowed_loopback_server_is_fetched(serve, connections) -> None:
    server = serve({"/clip": _body(CLIP)})
    out = io.BytesIO()
    got = fetch(server.url("/clip"), out, _policy(allow=LOOPBACK), what="target_url")
    assert out.getvalue() == CLIP
    assert (got.size, got.content_type, got.url) == (len(CLIP), "video/mp4", server.url("/clip"))
    assert connections == [("127.0.0.1", server.port)]


def test_https_goes_to_the_checked_address_and_verifies_the_name(serve, dns, tls, connections) -> None:
    context, ca_bundle, sni = tls
    server = serve({"/clip": _body(CLIP)}, tls=context)
    dns.answers["media.test"] = [["127.0.0.1"], ["169.254.169.254"]]  # a rebinding second answer
    out = io.BytesIO()
    url = server.url("/clip", scheme="https", name="media.test")
    fetch(url, out, _policy(allow=LOOPBACK, ca_bundle=ca_bundle))
    assert out.getvalue() == CLIP
    assert dns.lookups == ["media.test"]  # one lookup, ours: the connection used its answer
    assert connections == [("127.0.0.1", server.port)]
    assert server.requests == [("/clip", f"media.test:{server.port}")]
    assert sni == ["media.test"]


@pytest.mark.parametrize(
    ("name", "trusted", "reason"),
    [
        ("other.test", True, "Hostname mismatch"),
        ("media.test", False, "unable to get local issuer certificate"),
    ],
)
def test_https_with_a_certificate_that_does_not_verify_is_refused(
    serve, dns, tls, name, trusted, reason
) -> None:
    context, ca_bundle, _ = tls
    server = serve({"/clip": _body(CLIP)}, tls=context)
    dns.answers[name] = [["127.0.0.1"]]
    policy = _policy(allow=LOOPBACK, ca_bundle=ca_bundle if trusted else None)
    with pytest.raises(
        EgressRefused, match=f"could not fetch from {name} .*certificate was refused.*{reason}"
    ):
        fetch(server.url("/clip", scheme="https", name=name), io.BytesIO(), policy, what="target_url")
    assert server.requests == []


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_loopback_without_the_allow_list_is_refused_before_connecting(serve, connections, scheme) -> None:
    server = serve({"/clip": _body(CLIP)})
    with pytest.raises(
        EgressRefused, match=re.escape("target_url resolves to a loopback address (127.0.0.1)")
    ):
        fetch(server.url("/clip", scheme=scheme), io.BytesIO(), _policy(), what="target_url")
    assert server.requests == [] and connections == []


def test_redirects_within_the_rules_are_followed(serve) -> None:
    routes = {"/a": _redirect("/b"), "/clip": _body(CLIP)}
    server = serve(routes)
    routes["/b"] = _redirect(server.url("/clip"))  # absolute, after a relative one
    out = io.BytesIO()
    got = fetch(server.url("/a"), out, _policy(allow=LOOPBACK))
    assert out.getvalue() == CLIP and got.url == server.url("/clip")
    assert [path for path, _ in server.requests] == ["/a", "/b", "/clip"]


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://127.0.0.2:{port}/clip", "resolves to a loopback address (127.0.0.2)"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "resolves to a cloud metadata address (169.254.169.254)",
        ),
        ("http://[fd00:ec2::254]/latest/meta-data/", "resolves to a cloud metadata address (fd00:ec2::254)"),
        ("http://169.254.10.10/", "resolves to a link-local address (169.254.10.10)"),
        ("file:///etc/passwd", ": file: URLs are not allowed"),
        ("s3://media/clip.mp4", ": s3: URLs are not allowed"),
        ("http://[::1", "is not a valid URL"),
    ],
)
def test_a_redirect_is_checked_before_it_is_followed(serve, connections, location, reason) -> None:
    refused = serve({"/clip": _body(CLIP)}, host="127.0.0.2")
    allowed = serve({"/go": _redirect(location.format(port=refused.port))})
    policy = _policy(allow=parse_allow("127.0.0.1/32, 169.254.169.0/24"))  # metadata stays refused
    with pytest.raises(EgressRefused, match=_message("target_url (after a redirect)", reason)):
        fetch(allowed.url("/go"), io.BytesIO(), policy, what="target_url")
    assert len(allowed.requests) == 1 and refused.requests == []
    assert connections == [("127.0.0.1", allowed.port)]


def test_too_many_redirects_are_refused(serve) -> None:
    server = serve({"/loop": _redirect("/loop")})
    with pytest.raises(EgressRefused, match="^source_url redirects more than 3 times$"):
        fetch(server.url("/loop"), io.BytesIO(), _policy(allow=LOOPBACK, max_redirects=3), what="source_url")
    assert len(server.requests) == 4


def test_an_error_answer_is_refused(serve) -> None:
    server = serve({})
    with pytest.raises(EgressRefused, match="^target_url answered 404$"):
        fetch(server.url("/missing"), io.BytesIO(), _policy(allow=LOOPBACK), what="target_url")


def test_a_refused_connection_is_refused() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(
        EgressRefused, match=re.escape("target_url: could not fetch from 127.0.0.1 (connection refused)")
    ):
        fetch(f"http://127.0.0.1:{port}/", io.BytesIO(), _policy(allow=LOOPBACK), what="target_url")


@pytest.mark.parametrize("length", [True, False])
def test_a_body_over_the_cap_is_refused_and_the_output_stops_at_it(serve, length) -> None:
    server = serve({"/big": _body(CLIP * 2, length=length)})
    out = io.BytesIO()
    with pytest.raises(EgressRefused, match="^target_url is larger than 100000 bytes$"):
        fetch(server.url("/big"), out, _policy(allow=LOOPBACK, max_bytes=100_000), what="target_url")
    assert len(out.getvalue()) <= 100_000
    if length:
        assert out.getvalue() == b""  # refused on the Content-Length, before the body


@pytest.mark.parametrize("in_headers", [True, False])
def test_a_server_that_trickles_is_cut_off_at_the_deadline(serve, in_headers) -> None:
    server = serve({"/slow": _trickle(in_headers=in_headers)})
    started = time.monotonic()
    with pytest.raises(EgressRefused, match=r"^target_url did not answer within 0\.5 s$"):
        fetch(server.url("/slow"), io.BytesIO(), _policy(allow=LOOPBACK, timeout_s=0.5), what="target_url")
    assert 0.45 <= time.monotonic() - started < 1.5


# ---------------------------------------------------------------------------- checks alone


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (
            "http://169.254.169.254/latest/meta-data/",
            "resolves to a cloud metadata address (169.254.169.254)",
        ),
        ("https://[fd00:ec2::254]/", "resolves to a cloud metadata address (fd00:ec2::254)"),
        ("https://100.100.100.200/", "resolves to a cloud metadata address (100.100.100.200)"),
        ("https://[::ffff:169.254.169.254]/", "resolves to a cloud metadata address (::ffff:a9fe:a9fe)"),
        ("https://10.1.2.3/", "resolves to a private address (10.1.2.3)"),
        ("https://172.16.0.1/", "resolves to a private address (172.16.0.1)"),
        ("https://192.168.1.1:8443/", "resolves to a private address (192.168.1.1)"),
        ("https://[fc00::1]/", "resolves to a private address (fc00::1)"),
        ("https://[::ffff:10.1.2.3]/", "resolves to a private address (::ffff:a01:203)"),
        ("https://127.0.0.1/", "resolves to a loopback address (127.0.0.1)"),
        ("https://[::1]/", "resolves to a loopback address (::1)"),
        ("https://[64:ff9b::7f00:1]/", "resolves to a loopback address (64:ff9b::7f00:1)"),
        ("https://localhost/", "resolves to a loopback address"),
        ("https://169.254.1.1/", "resolves to a link-local address (169.254.1.1)"),
        ("https://[fe80::1]/", "resolves to a link-local address (fe80::1)"),
        ("https://224.0.0.1/", "resolves to a multicast address (224.0.0.1)"),
        ("https://0.0.0.0/", "resolves to an unspecified address (0.0.0.0)"),
        ("https://100.64.0.1/", "resolves to a carrier-grade NAT address (100.64.0.1)"),
        ("https://240.0.0.1/", "resolves to a reserved address (240.0.0.1)"),
        ("https://mixed.test/", "resolves to a private address"),
        ("https://missing.test/", "names a host that was not found (missing.test)"),
        ("http://8.8.8.8/", ": http:// is only allowed to addresses in FACEFLEET_EGRESS_ALLOW"),
        ("https://user:secret@8.8.8.8/", "contains a user name or password"),
        ("https://user@8.8.8.8/", "contains a user name or password"),
        ("file:///etc/passwd", ": file: URLs are not allowed"),
        ("ftp://8.8.8.8/clip.mp4", ": ftp: URLs are not allowed"),
        ("gopher://8.8.8.8/", ": gopher: URLs are not allowed"),
        ("data:video/mp4;base64,AAAA", ": data: URLs are not allowed"),
        ("//8.8.8.8/clip.mp4", ": scheme-less: URLs are not allowed"),
        ("https:///clip.mp4", "names no host"),
        ("http://8.8.8.8:99999/", "is not a valid URL"),
    ],
)
def test_refused_urls_name_the_reason(dns, connections, url, reason) -> None:
    dns.answers.update({"mixed.test": [["8.8.8.8", "10.0.0.1"]], "missing.test": [[]]})
    with pytest.raises(EgressRefused, match=_message("target_url", reason)):
        check_url(url, _policy(), what="target_url")
    assert connections == []


def test_a_name_is_not_shown_what_it_resolves_to(dns) -> None:
    dns.answers["internal.test"] = [["10.9.8.7"]]
    with pytest.raises(EgressRefused) as refused:
        check_url("https://internal.test/", _policy(), what="target_url")
    assert str(refused.value) == "target_url resolves to a private address"


@pytest.mark.parametrize(
    ("url", "allow"),
    [
        ("https://8.8.8.8/clip.mp4", ""),
        ("https://[2001:4860:4860::8888]:8443/clip.mp4", ""),
        ("http://10.1.2.3:8080/clip.mp4", "10.0.0.0/8"),
        ("https://[fd12::1]/clip.mp4", "fd00::/8"),
    ],
)
def test_public_and_allowed_urls_pass(url, allow) -> None:
    check_url(url, _policy(allow=parse_allow(allow)))


def test_metadata_stays_refused_inside_an_allowed_network() -> None:
    with pytest.raises(EgressRefused, match="cloud metadata"):
        check_url("http://169.254.169.254/", _policy(allow=parse_allow("169.254.0.0/16")))


# ---------------------------------------------------------------------------- s3 and settings


def test_s3_urls_are_parsed_for_allowed_buckets_only() -> None:
    buckets = frozenset({"media"})
    assert parse_s3_url("s3://media/in/my clip#1.mp4", buckets) == ("media", "in/my clip#1.mp4")
    check_url("S3://media/in/a.mp4", _policy(allowed_s3_buckets=buckets))
    with pytest.raises(
        EgressRefused, match="^source_url: the bucket backups is not one this service reads from$"
    ):
        check_url("s3://backups/db.dump", _policy(allowed_s3_buckets=buckets), what="source_url")
    for bad in ("s3://media", "s3://media/", "s3:///key", "https://media/key"):
        with pytest.raises(EgressRefused, match=r"is not a valid s3:// URL"):
            parse_s3_url(bad, buckets)
    with pytest.raises(EgressRefused, match="s3: URLs are not allowed"):
        fetch("s3://media/in/a.mp4", io.BytesIO(), _policy(allowed_s3_buckets=buckets))


def test_parse_allow() -> None:
    assert parse_allow("") == ()
    assert parse_allow(" 10.0.0.0/8, fd00::/8,,192.168.1.5 ") == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("fd00::/8"),
        ipaddress.ip_network("192.168.1.5/32"),
    )
    for bad in ("10.0.0.0/33", "10.1.2.3/8", "intranet", "10.0.0.0/8;172.16.0.0/12"):
        with pytest.raises(
            ValueError, match=f"^FACEFLEET_EGRESS_ALLOW: {re.escape(repr(bad))} is not a network"
        ):
            parse_allow(bad)
