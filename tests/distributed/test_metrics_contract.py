"""The alert rules and the dashboard name only what the running fleet exports: after a job,
the API's and a worker's /metrics show every metric they use (facefleet/observability/metric_names.py),
and nothing named facefleet_* that the list lacks, with only the labels it lists."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from facefleet.observability.metric_names import BY_NAME
from tests.harness.net import wait_for
from tests.harness.tasks import clip, submit, wait_state
from tests.observability.names import dashboard_expressions, listed_series, metric_names, rule_expressions


def _samples(url: str) -> dict[str, set[str]]:
    """Each sample name of a scrape, and the label names it carries."""
    body = requests.get(url, timeout=10)
    body.raise_for_status()
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(body.text):
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


def _worker_with_metrics(fleet) -> str:  # type: ignore[no-untyped-def]
    """The only worker, serving /metrics on a port of its own; its metrics URL."""
    url = fleet.only_worker({}).metrics_url
    wait_for(lambda: requests.get(url, timeout=2).ok, 30, "the worker's /metrics")
    return url


def _used() -> set[str]:
    """The listed metrics the rules and the dashboard name, directly or through a recording rule."""
    built_on = {name: metric_names(expr) for name, expr in rule_expressions()}
    names: set[str] = set()
    for _, expr in [*rule_expressions(), *dashboard_expressions()]:
        for name in metric_names(expr):
            names |= {name} | built_on.get(name, set())
    series = listed_series()
    return {series[name] for name in names if name in series}


def test_rules_and_dashboard_name_what_the_fleet_exports(fleet, tmp_path):
    worker_metrics = _worker_with_metrics(fleet)
    task_id = submit(fleet.api_url, clip(tmp_path / "in.mp4"))
    assert wait_state(fleet.api_url, task_id, {"succeeded", "failed", "cancelled"})["state"] == "succeeded"

    api, worker = _samples(f"{fleet.api_url}/metrics"), _samples(worker_metrics)
    scraped = {name: api.get(name, set()) | worker.get(name, set()) for name in {*api, *worker}}
    expected = {name for name in _used() if BY_NAME[name].only_with is None}
    missing = {
        name: BY_NAME[name].series() for name in expected if not set(BY_NAME[name].series()) & scraped.keys()
    }
    assert not missing, f"named by deploy/observability but not exported: {sorted(missing)}"

    ours = {name for name in scraped if name.startswith("facefleet_") and not name.endswith("_created")}
    series = listed_series()
    unlisted = ours - set(series)
    assert not unlisted, f"exported but not in facefleet/observability/metric_names.py: {sorted(unlisted)}"
    for name in ours:  # bounded labels: those listed (a histogram adds its bucket bound)
        unexpected = scraped[name] - set(BY_NAME[series[name]].labels) - {"le"}
        assert not unexpected, f"{name} carries labels {sorted(unexpected)} that the list does not name"
