"""The published API contract: Schemathesis generates requests for every operation of
/openapi.json (valid and invalid ones) and sends them to a live API with keys. No answer
may be a server error, and every answer must match the document (status, content type,
headers, body schema)."""

from __future__ import annotations

import itertools

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = 30  # per operation
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="session")
def contract_key(operator) -> str:
    return operator.key(operator.tenant())


def test_every_operation_honours_the_document(keyed_api, contract_key):
    """Each operation of the document in turn (schemathesis' pytest plugin does not run under
    this pytest, so the operations are driven here with the same strategies and checks)."""
    schema = schemathesis.openapi.from_url(f"{keyed_api}/openapi.json")
    headers = {"Authorization": f"Bearer {contract_key}"}
    failures: dict[str, str] = {}
    calls: list[int] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9

    for operation, mode in itertools.product(operations, schemathesis.GenerationMode):

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def exercise(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call_and_validate(base_url=keyed_api, headers=headers, checks=CHECKS)
            calls.append(response.status_code)

        try:
            exercise()
        except Unsatisfiable:  # nothing can be invalid in an operation without parameters
            continue
        except Exception as exc:  # every operation is tried; all failures are reported together
            failures[f"{operation.label} ({mode.value})"] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{label}:\n{error}" for label, error in failures.items())
    assert len(calls) >= 5 * len(operations), len(calls)  # the operations were really exercised
    assert {200, 404, 400} <= set(calls), sorted(set(calls))


def test_the_document_and_the_docs_page(keyed_api):
    doc = requests.get(f"{keyed_api}/openapi.json", timeout=10).json()
    assert doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    operations = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert {
        ("/v1/tasks", "post"),
        ("/v1/tasks", "get"),
        ("/v1/tasks/{task_id}", "get"),
        ("/v1/tasks/{task_id}", "delete"),
        ("/v1/tasks/{task_id}/cancel", "post"),
        ("/v1/tasks/{task_id}/retry", "post"),
    } <= operations
    submit = doc["paths"]["/v1/tasks"]["post"]
    assert {"multipart/form-data", "application/json"} <= set(submit["requestBody"]["content"])
    assert "application/problem+json" in submit["responses"]["422"]["content"]
    page = requests.get(f"{keyed_api}/docs", timeout=10)  # follows the redirect to Swagger UI
    assert page.status_code == 200 and "swagger" in page.text.lower()
    for asset in ("swagger/js/swagger-ui-bundle.js", "swagger/css/swagger-ui.css"):  # served here: no CDN
        assert requests.get(f"{keyed_api}/docs/{asset}", timeout=10).status_code == 200
    assert "unpkg.com" not in page.text and "cdn" not in page.text.lower()
