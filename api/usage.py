"""/v1/usage: the caller's tenant's work this calendar month (UTC), as its quota counts it,
beside the quota itself. The console shows it; ``facefleet tenants show`` prints the same.

(No ``from __future__ import annotations``: flask-openapi3 reads the views' types.)"""

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from api.auth import principal, protect
from api.schemas import TENANT_NAME, problems
from api.state import state
from api.tasks import SECURITY
from facefleet.records.db import Tenant
from facefleet.tenants.tenancy import usage_this_month

usage = APIBlueprint(
    "usage",
    __name__,
    url_prefix="/v1",
    abp_tags=[Tag(name="usage", description="work done this month, against the quota")],
    abp_security=SECURITY,
    abp_responses=problems(400, 401),
)
protect(usage)


class UsageQuery(BaseModel):
    tenant: str | None = Field(
        default=None,
        max_length=64,
        pattern=TENANT_NAME,
        description="admin keys: one tenant's (default: own)",
    )


class Usage(BaseModel):
    tenant: str
    month: str = Field(description="the calendar month counted (UTC), YYYY-MM", examples=["2026-12"])
    tasks: int = Field(description="tasks that finished their work this month")
    frames: int = Field(description="frames processed (what the monthly quota counts)")
    worker_seconds: float = Field(description="seconds of worker time spent on them")
    bytes_in: int
    bytes_out: int
    monthly_frames: int | None = Field(description="the tenant's monthly quota of frames (null: none)")


@usage.get("/usage", summary="the tenant's usage this month and its quota", responses={200: Usage})
def show(query: UsageQuery) -> Response:
    caller = principal()
    tenant = query.tenant if caller.admin and query.tenant else caller.tenant
    with state().services.ctx.read_sessions() as session:
        used = usage_this_month(session, tenant)
        row = session.get(Tenant, tenant)
        figures = {field: getattr(used, field) for field in ("tasks", "frames", "bytes_in", "bytes_out")}
        body = Usage(
            tenant=tenant,
            month=used.month,
            worker_seconds=float(used.worker_seconds or 0.0),
            monthly_frames=row.monthly_frames if row else None,
            **{name: int(value or 0) for name, value in figures.items()},
        )
    return jsonify(body.model_dump())
