"""GET /v1/usage (the console's usage panel): a tenant's work this month beside its quota; a
tenant's key sees its own only, whatever ``?tenant=`` says; an admin's names the tenant."""

from __future__ import annotations

import requests


def _usage(api: str, key: str, **params: str) -> dict:  # type: ignore[type-arg]
    answer = requests.get(
        f"{api}/v1/usage", params=params, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_usage_is_the_callers_own_with_its_quota_and_an_admin_names_the_tenant(keyed_api, operator):
    capped, other = operator.tenant("--monthly-frames", "5000"), operator.tenant()
    key, admin = operator.key(capped), operator.key(operator.tenant(), "--admin")

    own = _usage(keyed_api, key)
    assert own["tenant"] == capped and own["monthly_frames"] == 5000
    assert (own["tasks"], own["frames"], own["bytes_in"], own["bytes_out"]) == (0, 0, 0, 0)
    assert len(own["month"]) == 7 and own["worker_seconds"] == 0.0

    assert _usage(keyed_api, key, tenant=other)["tenant"] == capped  # not another tenant's figures
    seen = _usage(keyed_api, admin, tenant=capped)
    assert seen["tenant"] == capped and seen["monthly_frames"] == 5000
    assert requests.get(f"{keyed_api}/v1/usage", timeout=10).status_code == 401
