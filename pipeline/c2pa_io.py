"""C2PA manifests on our outputs (c2pa-python): signing a finished file, reading one back.

c2pa-python embeds a manifest in MP4 and MOV (ISO BMFF: a ``uuid`` box, the media's bytes
hashed around it) and cannot in Matroska (no ``video/x-matroska`` among its formats);
``can_sign`` says which. The library (a native one of ~16 MB) is imported only here, when a
deployment signs or a file is verified.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

# our containers, as c2pa names their formats
MIME_TYPES = {"mp4": "video/mp4", "mov": "video/quicktime", "mkv": "video/x-matroska"}
# the IPTC digital source type of a composite that includes synthetic elements (faces)
COMPOSITE_SYNTHETIC = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeSynthetic"


class SigningError(PipelineError):
    """The certificate or key cannot sign, or the file could not be signed."""


def can_sign(container: str) -> bool:
    import c2pa

    return MIME_TYPES.get(container, "") in c2pa.Builder.get_supported_mime_types()


@dataclass(frozen=True)
class Credentials:
    """A certificate chain (PEM, the signer's certificate first) and its private key (PEM)."""

    chain: bytes
    key: bytes
    alg: str  # c2pa's name: es256, es384, es512, ps256, ed25519

    @classmethod
    def load(cls, cert: Path, key: Path, *, trial: bool = True) -> Credentials:
        """Read and check the pair: both parse, the key is the certificate's, and (``trial``)
        c2pa signs a small image with them (it refuses a self-signed or CA certificate as a
        signer)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

        try:
            chain, key_bytes = cert.read_bytes(), key.read_bytes()
            certificates = x509.load_pem_x509_certificates(chain)
            private = serialization.load_pem_private_key(key_bytes, password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise SigningError(f"the C2PA certificate or key cannot be read: {exc}") from None
        public = serialization.PublicFormat.SubjectPublicKeyInfo
        der = serialization.Encoding.DER
        if private.public_key().public_bytes(der, public) != certificates[0].public_key().public_bytes(
            der, public
        ):
            raise SigningError("the C2PA key is not the key of the certificate (the first of the chain)")
        if isinstance(private, ec.EllipticCurvePrivateKey):
            alg = {256: "es256", 384: "es384", 521: "es512"}.get(private.curve.key_size)
        elif isinstance(private, rsa.RSAPrivateKey):
            alg = "ps256"
        elif isinstance(private, ed25519.Ed25519PrivateKey):
            alg = "ed25519"
        else:
            alg = None
        if alg is None:
            raise SigningError(f"the C2PA key's type ({type(private).__name__}) cannot sign C2PA manifests")
        credentials = cls(chain, key_bytes, alg)
        if trial:
            credentials.try_signing()
        return credentials

    def _signer(self) -> Any:
        import c2pa

        info = c2pa.C2paSignerInfo(
            alg=self.alg.encode(), sign_cert=self.chain, private_key=self.key, ta_url=None
        )
        return c2pa.Signer.from_info(info)

    def try_signing(self) -> None:
        """Sign a 1x1 PNG in memory: what c2pa refuses in the chain shows here, at start-up."""
        import io

        import c2pa

        created = {"actions": [{"action": "c2pa.created", "digitalSourceType": COMPOSITE_SYNTHETIC}]}
        manifest = {
            "claim_generator_info": [{"name": "FaceFleet start-up check"}],
            "assertions": [{"label": "c2pa.actions.v2", "data": created}],
        }
        try:
            with self._signer() as signer, c2pa.Builder(manifest) as builder:
                builder.sign(signer, "image/png", io.BytesIO(_tiny_png()), io.BytesIO())
        except c2pa.C2paError as exc:
            raise SigningError(f"c2pa refuses to sign with the C2PA certificate: {exc}") from None

    def sign(self, source: Path, dest: Path, container: str, manifest: dict[str, Any]) -> str:
        """``source`` with ``manifest`` embedded and signed, written to ``dest``; returns the
        manifest's label."""
        import c2pa

        try:
            with (
                self._signer() as signer,
                c2pa.Builder(manifest) as builder,
                open(source, "rb") as reading,
                open(dest, "w+b") as writing,
            ):
                builder.sign(signer, MIME_TYPES[container], reading, writing)
            with open(dest, "rb") as signed, c2pa.Reader(MIME_TYPES[container], signed) as reader:
                return str(json.loads(reader.json()).get("active_manifest", ""))
        except c2pa.C2paError as exc:
            raise SigningError(f"C2PA signing failed: {exc}") from None


def read_manifest(path: Path, mime: str, trust_anchors: bytes | None = None) -> dict[str, Any] | None:
    """The active manifest of ``path`` with its validation, or None when it has none.
    ``trust_anchors`` (PEM): the roots a signer must chain to for ``trusted``."""
    import c2pa

    settings: dict[str, Any] = {"verify": {"verify_trust": trust_anchors is not None}}
    if trust_anchors is not None:
        settings["trust"] = {"trust_anchors": trust_anchors.decode()}
    try:
        with c2pa.Context.from_dict(settings) as context, open(path, "rb") as stream:
            reader = c2pa.Reader.try_create(mime, stream, context=context)
            if reader is None:
                return None
            with reader:
                active = reader.get_active_manifest() or {}
                state = reader.get_validation_state()
                results = reader.get_validation_results() or {}
    except c2pa.C2paError.NotSupported:
        return None
    except c2pa.C2paError as exc:
        return {"present": True, "valid": False, "error": str(exc)}
    failures = [item.get("code") for item in (results.get("activeManifest") or {}).get("failure", [])]
    signature = active.get("signature_info") or {}
    return {
        "present": True,
        "valid": state in ("Valid", "Trusted"),
        "trusted": state == "Trusted",
        "state": state,
        "failures": failures,
        "label": active.get("label"),
        "signer": {"common_name": signature.get("common_name"), "issuer": signature.get("issuer")},
        "claim_generator": [g.get("name") for g in active.get("claim_generator_info", [])],
        "assertions": {
            a.get("label"): a.get("data")
            for a in active.get("assertions", [])
            if not str(a.get("label", "")).startswith("c2pa.hash")
        },
    }


def _tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = (1).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])  # 1x1, 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )
