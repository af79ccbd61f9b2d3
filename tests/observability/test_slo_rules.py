"""deploy/observability: the rules pass promtool's checks and unit tests, and the rules and
the dashboard name only the metrics the code exports (facefleet/observability/metric_names.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.observability.names import (
    RULE_TESTS,
    RULES,
    dashboard_expressions,
    listed_series,
    metric_names,
    recorded,
    rule_expressions,
)

CI = os.environ.get("CI", "").lower() == "true"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if CI:
            pytest.fail("promtool is required under CI=true (make deploy-tools installs it)")
        pytest.skip("promtool is not installed (make deploy-tools installs it)")
    return found


def test_promtool_checks_the_rules_and_every_alert_fires_and_resolves():
    promtool = _promtool()
    checked = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([promtool, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_has_a_unit_test():
    alerts = {name for name, _ in rule_expressions() if name not in recorded()}
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert alerts == tested


def test_names_are_read_out_of_promql():
    expr = (
        "histogram_quantile(0.95, sum by (le, route) (rate(facefleet_http_request_duration_seconds_bucket"
        '{status=~"5..", route!~"/a|{b}"}[$__rate_interval]))) / ignoring(x) group_left up offset 1h30m'
        " > bool 1e-3 and on() facefleet:api_error_ratio:rate5m unless absent(other_total)"
    )
    assert metric_names(expr) == {
        "facefleet_http_request_duration_seconds_bucket",
        "up",
        "facefleet:api_error_ratio:rate5m",
        "other_total",
    }


@pytest.mark.parametrize(
    "where, expressions",
    [("rules.yml", list(rule_expressions())), ("grafana-dashboard.json", list(dashboard_expressions()))],
)
def test_queries_name_only_listed_metrics(where, expressions):
    allowed = set(listed_series()) | recorded()
    assert expressions, f"no queries in {where}"
    for title, expr in expressions:
        names = metric_names(expr)
        assert names, f"{where}: {title}: names no metric: {expr}"
        unknown = names - allowed
        assert not unknown, (
            f"{where}: {title} names {sorted(unknown)}, not in facefleet/observability/metric_names.py"
        )


def test_the_dashboard_shows_what_every_alert_watches():
    """Each metric of the rules has a panel, directly or through a recording rule built on it."""
    built_on = {name: metric_names(expr) for name, expr in rule_expressions()}
    shown: set[str] = set()
    for _, expr in dashboard_expressions():
        for name in metric_names(expr):
            shown |= {name} | built_on.get(name, set())
    watched = set().union(*built_on.values()) - recorded()
    assert watched and watched <= shown, sorted(watched - shown)
