"""Monitoring as deployed: the Prometheus alert rules (unit-tested with promtool), their scrape
configuration, the Alertmanager's e-mail route, and the Grafana dashboards, whose every query
must name metrics the code really exports.

promtool and amtool come from Debian's ``prometheus`` and ``prometheus-alertmanager``, which
``make test`` installs when they are missing; without them these tests fail, they never skip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import promql_parser
import pytest
import yaml

from ops.alerting import alertmanager_config
from shared.retention import OVERDUE_AFTER_DAYS
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
RULES = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())
ALERTS = {rule["alert"]: rule for group in RULES["groups"] for rule in group["rules"]}
DASHBOARDS = {path.stem: json.loads(path.read_text()) for path in sorted((GRAFANA / "dashboards").glob("*.json"))}
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
DEFAULTS = Settings()
# Series Prometheus makes itself: not exported by any code of ours.
PROMETHEUS_MADE = {"up"}
# Grafana's variables, as a query sees them once Grafana has filled them in.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1d"}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: `make test` installs it (Debian's prometheus and prometheus-alertmanager)")
    return path


# --- metric names: what the code exports, what a query reads ------------------------------------------

SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


def exported_metric_names() -> set[str]:
    """Every series name the workers (shared/worker_metrics.py and the gauges services register) and the API
    (services/api/observability.py) can serve, from their registries' own descriptions."""
    from prometheus_client import REGISTRY

    import shared.worker_metrics  # noqa: F401 - its counters and histograms register themselves
    from services.api.observability import ApiMetrics
    from services.archiver.tasks import BACKLOG
    from services.publisher.run_gauges import gauges as run_gauges

    families = [*REGISTRY.collect(), *ApiMetrics(600).registry.collect()]  # no scraped gauge is registered here
    scraped = [*run_gauges(None, None, None, DEFAULTS), BACKLOG]  # described without being read
    families += [family for gauge in scraped for family in gauge.describe()]
    return {family.name + suffix for family in families for suffix in SUFFIXES[family.type]}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects, from its syntax tree."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    names: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name)
        elif isinstance(node, promql_parser.MatrixSelector):
            walk(node.vector_selector)
        elif isinstance(node, promql_parser.Call):
            for arg in node.args:
                walk(arg)
        elif isinstance(node, promql_parser.AggregateExpr):
            walk(node.expr)
            if node.param is not None:
                walk(node.param)
        elif isinstance(node, promql_parser.BinaryExpr):
            walk(node.lhs)
            walk(node.rhs)
        elif isinstance(node, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr):
            walk(node.expr)

    walk(promql_parser.parse(expr))
    return names


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel, expression) of every query of every panel."""
    return [
        (name, panel["title"], target["expr"])
        for name, dashboard in DASHBOARDS.items()
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def test_a_renamed_metric_is_caught():
    exported = exported_metric_names()
    assert "pipeline_rows_in_total" in exported and "api_request_seconds_bucket" in exported
    assert "pipeline_lake_bytes" in exported and "pipeline_archive_documents" in exported
    renamed = 'sum(rate(pipeline_rows_read_total{stage="transform"}[$__rate_interval])) / on() group_left up'
    assert metric_names(renamed) - exported - PROMETHEUS_MADE == {"pipeline_rows_read_total"}


@pytest.mark.parametrize("dashboard,panel,expr", dashboard_queries())
def test_each_dashboard_query_reads_metrics_the_code_exports(dashboard, panel, expr):
    names = metric_names(expr)
    assert names, f"{dashboard} / {panel}: no metric in {expr!r}"
    assert names - exported_metric_names() - PROMETHEUS_MADE == set(), f"{dashboard} / {panel}"


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_each_alert_rule_reads_metrics_the_code_exports(alert):
    names = metric_names(ALERTS[alert]["expr"])
    assert names and names - exported_metric_names() - PROMETHEUS_MADE == set()


# --- the alert rules ------------------------------------------------------------------------------------

# reviews doctor's rules -> the alerts that watch the same thing, at the same severity.
DOCTOR = {
    "api_health": ("critical", ["ApiDown", "ApiNotReady"]),
    "api_liveness": ("warning", ["ApiHealthChecksFailing"]),
    "api_5xx_rate": ("critical", ["ApiErrorRate"]),
    "api_latency": ("warning", ["ApiLatencyHigh"]),
    "last_run": ("critical", ["LastRunFailed"]),
    "run_duration": ("warning", ["RunSlow"]),
    "retries_exhausted": ("warning", ["RetriesExhausted"]),
    "curated_age": ("critical", ["CuratedStale"]),
    "curated_size_drop": ("critical", ["CuratedShrank"]),
    "curated_size_growth": ("warning", ["CuratedGrew"]),
    "reject_share": ("critical", ["RejectShareHigh"]),
    "connection_errors": ("critical", ["ConnectionErrorsRepeated"]),
    "lake_retention": ("warning", ["LakeRetentionOverdue"]),
}


def test_every_doctor_rule_has_its_alert_at_the_same_severity():
    from ops import doctor

    for rule, (severity, alerts) in DOCTOR.items():
        assert callable(getattr(doctor, rule)), rule
        for alert in alerts:
            assert ALERTS[alert]["labels"]["severity"] == severity, alert


def test_the_thresholds_are_the_settings_defaults():
    d = DEFAULTS
    scrape_s = 30  # prometheus.yml: the third failed scrape in a row fires after `for` = 2 intervals
    expected = {
        "ApiErrorRate": [f"> {d.alert_api_5xx_share:g}"],
        "ApiLatencyHigh": [f"histogram_quantile({d.alert_api_latency_quantile:g},", f"> {d.alert_api_latency_s:g}"],
        "RunSlow": [f"> {d.alert_run_duration_factor:g} * pipeline_run_duration_baseline_seconds"],
        "RejectShareHigh": [f"> {d.alert_reject_share:g}"],
        "CuratedStale": [f"> {d.alert_curated_max_age_h:g} * 3600"],
        "CuratedShrank": [f"< {1 - d.alert_size_drop_share:g}"],
        "CuratedGrew": [f"> {1 + d.alert_size_growth_share:g}"],
        "ConnectionErrorsRepeated": [f"[{d.alert_connection_window_s // 3600}h]", f">= {d.alert_connection_errors}"],
        "LakeRetentionOverdue": [f"> {d.lake_retention_days + OVERDUE_AFTER_DAYS} * 86400"],
    }
    for alert, fragments in expected.items():
        expr = " ".join(ALERTS[alert]["expr"].split())
        for fragment in fragments:
            assert fragment in expr, f"{alert}: {fragment!r} not in {expr!r}"
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["global"]["scrape_interval"] == config["global"]["evaluation_interval"] == f"{scrape_s}s"
    assert ALERTS["ApiHealthChecksFailing"]["for"] == f"{(d.alert_health_failures - 1) * scrape_s // 60}m"


def test_the_alert_rules_pass_their_promtool_unit_tests():
    tests = yaml.safe_load((PROMETHEUS / "rules_test.yml").read_text())
    cases = [case for test in tests["tests"] for case in test["alert_rule_test"]]
    for alert in ALERTS:  # each alert is shown both quiet and firing
        outcomes = {bool(case["exp_alerts"]) for case in cases if case["alertname"] == alert}
        assert outcomes == {False, True}, alert
    result = subprocess.run(
        [tool("promtool"), "test", "rules", "rules_test.yml"],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_every_worker_and_the_api_and_loads_the_rules():
    result = subprocess.run(
        [tool("promtool"), "check", "config", "prometheus.yml"],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "15 rules found" in result.stdout
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    workers = {name for name, service in COMPOSE.items() if "worker" in service.get("command", [])}
    (pipeline,) = jobs["pipeline"]["dns_sd_configs"]
    assert set(pipeline["names"]) == workers and len(workers) == 5
    for worker in workers:  # every replica serves on the port Prometheus scrapes
        assert int(COMPOSE[worker]["environment"]["METRICS_PORT"]) == pipeline["port"]
    (api,) = jobs["api"]["dns_sd_configs"]
    assert api["names"] == ["api"] and api["port"] == 8000 and jobs["api"]["metrics_path"] == "/metrics"
    assert COMPOSE["api"]["command"] == ["python", "-m", "services.api"]  # serves on API_PORT
    assert COMPOSE["api"]["environment"]["API_PORT"] == "8000"
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in COMPOSE["prometheus"]["volumes"]


# --- the Alertmanager's e-mail route --------------------------------------------------------------------


@pytest.mark.parametrize("email", ["ops@example.com", ""])
def test_the_alertmanager_mails_alerts_where_the_settings_say(email, tmp_path):
    settings = Settings(
        alert_email_to=email,
        alert_smtp_host="smtp.example.com:587",
        alert_smtp_user="alerts",
        alert_smtp_password="s3cret",
    )
    config = alertmanager_config(settings)
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([tool("amtool"), "check-config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert config["global"]["smtp_smarthost"] == "smtp.example.com:587" and config["global"]["smtp_require_tls"]
    assert config["global"]["smtp_auth_password"] == "s3cret"
    (receiver,) = config["receivers"]
    if email:
        assert config["route"]["receiver"] == "email" and receiver["email_configs"][0]["to"] == email
    else:  # nobody to mail: the alerts are in the Alertmanager's UI only
        assert config["route"]["receiver"] == "ui-only" and "email_configs" not in receiver


def test_compose_renders_the_alertmanager_config_from_the_settings():
    render = COMPOSE["alertmanager-config"]
    assert render["command"][:2] == ["reviews", "alertmanager-config"]
    out = render["command"][render["command"].index("--out") + 1]
    assert set(render["environment"]) >= {
        "ALERT_EMAIL_TO",
        "ALERT_EMAIL_FROM",
        "ALERT_SMTP_HOST",
        "ALERT_SMTP_USER",
        "ALERT_SMTP_PASSWORD",
    }
    manager = COMPOSE["alertmanager"]
    assert f"--config.file={out}" in manager["command"]
    assert manager["depends_on"]["alertmanager-config"]["condition"] == "service_completed_successfully"


# --- Grafana ---------------------------------------------------------------------------------------------


def test_the_dashboards_are_provisioned_with_the_panels_asked_for():
    grafana = COMPOSE["grafana"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana["volumes"]
    (provider,) = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "reviews.yml").read_text())["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    (source,) = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090" and source["type"] == "prometheus"
    assert len({d["uid"] for d in DASHBOARDS.values()}) == len(DASHBOARDS)
    titles = {name: {panel["title"] for panel in d["panels"]} for name, d in DASHBOARDS.items()}
    assert titles["pipeline"] >= {"Runs by status", "Runs ended per day", "Run duration", "Reject rate"}
    assert titles["api"] >= {
        "Availability, last 24 h",
        "Availability over time",
        "Error rate",
        "Latency p99 per endpoint",
        "Requests per endpoint",
    }
    assert titles["storage"] >= {"Lake bytes per zone", "Lake objects per zone", "Archived reviews"}
    for dashboard in DASHBOARDS.values():
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == source["uid"], panel["title"]
    per_endpoint = next(p for p in DASHBOARDS["api"]["panels"] if p["title"] == "Latency p99 per endpoint")
    assert "by (le, route)" in per_endpoint["targets"][0]["expr"]
