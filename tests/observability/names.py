"""The metric names that the alert rules and the dashboard in deploy/observability/ use,
read out of their PromQL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

from facefleet.observability.metric_names import METRICS

OBSERVABILITY = Path(__file__).resolve().parents[2] / "deploy" / "observability"
RULES = OBSERVABILITY / "rules.yml"
RULE_TESTS = OBSERVABILITY / "rules.test.yml"
DASHBOARD = OBSERVABILITY / "grafana-dashboard.json"

# removed in this order: what is not a metric name but may look like one
_STRIP = [
    re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`'),  # strings (they may hold braces)
    re.compile(r"\$\{[^}]*\}|\$\w+"),  # Grafana variables
    re.compile(r"\{[^{}]*\}"),  # label matchers
    re.compile(r"\[[^\[\]]*\]"),  # ranges and subqueries
    re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.I),  # label lists
    re.compile(r"(?<![\w:.])(?:\d+(?:ms|[smhdwy]))+(?![\w:])"),  # durations (offset 5m)
    re.compile(r"(?<![\w:])(?:0x[0-9a-f]+|\d*\.?\d+(?:e[+-]?\d+)?)(?![\w:])", re.I),  # numbers
]
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
_KEYWORDS |= {"by", "without", "on", "ignoring", "group_left", "group_right"}


def metric_names(expr: str) -> set[str]:
    """The metric (or recorded series) names a PromQL expression selects."""
    text = expr
    for pattern in _STRIP:
        text = pattern.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group()
        if word.lower() in _KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue  # a keyword, or a function or aggregation
        names.add(word)
    return names


def _rules() -> list[dict]:  # type: ignore[type-arg]
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def recorded() -> set[str]:
    return {rule["record"] for rule in _rules() if "record" in rule}


def rule_expressions() -> Iterator[tuple[str, str]]:
    """(the rule's name, its expression) for every recording and alerting rule."""
    for rule in _rules():
        yield rule.get("record") or rule["alert"], rule["expr"]


def dashboard_expressions() -> Iterator[tuple[str, str]]:
    """(the panel's title, a query) for every query of every panel, rows' panels included."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    for panel in panels + [inner for p in panels for inner in p.get("panels", [])]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def listed_series() -> dict[str, str]:
    """Each sample name a scrape may show, and the listed metric it belongs to."""
    return {series: metric.name for metric in METRICS for series in metric.series()}
