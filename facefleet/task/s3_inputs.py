"""Which ``s3://`` inputs a tenant may name. The service reads them with its own credentials,
so the bucket being one the deployment reads from (FACEFLEET_EGRESS_S3_BUCKETS) is not
enough: each tenant has its own allow-list of bucket and key prefixes (``facefleet tenants
update NAME --s3-allow bucket/prefix``), and the service's own bucket, which holds every
tenant's files, is always refused. A key is compared as written, and keys with ``.`` or
``..`` segments are refused (a client or server on the way could resolve them)."""

from __future__ import annotations

from collections.abc import Iterable

from facefleet.config.inputs import control_character
from facefleet.egress import EgressRefused, parse_s3_url

HOW_TO_ALLOW = "an operator allows prefixes with: facefleet tenants update TENANT --s3-allow bucket/prefix"


class S3AllowError(ValueError):
    """An allow-list entry an operator gave that cannot be used."""


def allow_entry(text: str, own_bucket: str | None) -> str:
    """``bucket/prefix`` from ``s3://bucket/prefix`` or ``bucket/prefix`` (a bare bucket: all
    of it)."""
    value = text.strip()
    value = value[5:] if value[:5].lower() == "s3://" else value
    bucket, _, prefix = value.partition("/")
    if not bucket or control_character(value) or _dotted(prefix):
        raise S3AllowError(f"{text!r} is not bucket/prefix")
    if bucket == own_bucket:
        raise S3AllowError(
            f"the service's own bucket ({bucket}) holds every tenant's files: it cannot be allowed"
        )
    return f"{bucket}/{prefix}"


def check_s3_input(
    url: str,
    *,
    what: str,
    deployment_buckets: frozenset[str],
    own_bucket: str | None,
    tenant_allow: Iterable[str],
) -> tuple[str, str]:
    """``(bucket, key)`` of an ``s3://`` input this tenant may name; else EgressRefused."""
    bucket, _, key = url[5:].partition("/")
    if bucket and bucket == own_bucket:
        raise EgressRefused(f"{what}: the service's own bucket cannot be read as an input")
    bucket, key = parse_s3_url(url, deployment_buckets, what=what)
    if _dotted(key):
        raise EgressRefused(f"{what}: the key has '.' or '..' segments")
    allowed = [entry.partition("/") for entry in tenant_allow]
    if not any(bucket == b and key.startswith(prefix) for b, _, prefix in allowed):
        raise EgressRefused(
            f"{what}: s3://{bucket}/{key[:200]} is outside this tenant's allowed prefixes ({HOW_TO_ALLOW})"
        )
    return bucket, key


def _dotted(key: str) -> bool:
    return any(segment in (".", "..") for segment in key.split("/")) or "//" in key or key.startswith("/")
