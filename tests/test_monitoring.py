"""Monitoring: consumer lag, the alert rules (promtool), Alertmanager's routing (amtool), the runbook,
and a real Prometheus scraping a real worker that answers every dashboard panel's and every alert's
query."""
from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterator

import pytest
import yaml
from conftest import malformed_records
from faust.types import TP
from kafka import KafkaProducer
from prometheus_client import REGISTRY
from test_deploy import compose_mounts

from model.datasets.synthetic import generate
from ops.broker import free_port
from ops.clients import producer, publish_events, publish_items
from state.event import EVENT_TYPES
from streams.lag import LagReporter
from streams.topics import event_topic

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "strata.json"
# Grafana's variables in the dashboard's queries, as a concrete PromQL range for a Prometheus
# scraping every second that has run for some seconds.
GRAFANA_VARIABLES = {"$__rate_interval": "1m"}

BROWSE, ITEMS, CHANGELOG = "events.browse", "items", "strata-windows-changelog"


class FakeConsumer:
    """The part of Faust's consumer the lag reporter reads, with offsets set by the test."""

    def __init__(self, assigned: set[TP], fetched: dict, listed: dict, committed: dict, earliest: dict,
                 positions: dict):
        self.assigned, self.fetched, self.listed = assigned, fetched, listed
        self._committed_offset = defaultdict(lambda: None, committed)
        self.earliest, self.positions = earliest, positions

    def assignment(self) -> set[TP]:
        return set(self.assigned)

    def highwater(self, tp: TP):
        return self.fetched.get(tp)

    async def highwaters(self, *tps: TP) -> dict:
        return {tp: self.listed[tp] for tp in tps}

    async def earliest_offsets(self, *tps: TP) -> dict:
        return {tp: self.earliest[tp] for tp in tps}

    async def position(self, tp: TP) -> int:
        return self.positions[tp]


def lag_series() -> dict[tuple[str, str], float]:
    return {(s.labels["topic"], s.labels["partition"]): s.value
            for m in REGISTRY.collect() if m.name == "strata_consumer_lag" for s in m.samples}


def tp(topic: str, partition: int) -> TP:
    return TP(topic, partition)


def test_lag_is_end_minus_committed_for_events_and_end_minus_position_for_items():
    consumer = FakeConsumer(
        assigned={tp(BROWSE, 0), tp(BROWSE, 1), tp(BROWSE, 2), tp(ITEMS, 0), tp(CHANGELOG, 0)},
        # 0: the embedded broker's ListOffsets undercounts; the fetch response's high watermark is right.
        # 1: not fetched lately (backed up); ListOffsets is fresh.
        fetched={tp(BROWSE, 0): 100, tp(BROWSE, 1): 95, tp(BROWSE, 2): 50, tp(ITEMS, 0): 10},
        listed={tp(BROWSE, 0): 1, tp(BROWSE, 1): 120, tp(BROWSE, 2): 50, tp(ITEMS, 0): 10, tp(CHANGELOG, 0): 9},
        committed={tp(BROWSE, 0): 90, tp(BROWSE, 1): 90},  # 2: never committed, consumed from its start
        earliest={tp(BROWSE, 2): 5},
        positions={tp(ITEMS, 0): 7},
    )
    reporter = LagReporter(SimpleNamespace(consumer=consumer, rebalancing=False), {BROWSE}, ITEMS)
    asyncio.run(reporter.tick())
    assert lag_series() == {(BROWSE, "0"): 10, (BROWSE, "1"): 30, (BROWSE, "2"): 45, (ITEMS, "0"): 3}

    # A partition lost in a rebalance: its series goes at once, and stays gone on the next tick.
    reporter.forget({tp(BROWSE, 1)})
    consumer.assigned -= {tp(BROWSE, 1)}
    assert (BROWSE, "1") not in lag_series()
    asyncio.run(reporter.tick())
    assert set(lag_series()) == {(BROWSE, "0"), (BROWSE, "2"), (ITEMS, "0")}
    # Lost without the signal (the assignment shrank between ticks): gone on the next tick.
    consumer.assigned -= {tp(BROWSE, 2), tp(ITEMS, 0)}
    asyncio.run(reporter.tick())
    assert set(lag_series()) == {(BROWSE, "0")}
    reporter.forget({tp(BROWSE, 0)})
    assert lag_series() == {}


def test_a_failing_lag_tick_is_logged_and_the_worker_goes_on(caplog):
    class BrokenConsumer(FakeConsumer):
        async def highwaters(self, *tps: TP) -> dict:
            raise ConnectionError("broker gone")

    consumer = BrokenConsumer({tp(BROWSE, 0)}, {}, {}, {}, {}, {})
    reporter = LagReporter(SimpleNamespace(consumer=consumer, rebalancing=False), {BROWSE}, ITEMS)
    with caplog.at_level(logging.WARNING, logger="streams.lag"):
        asyncio.run(reporter.tick())  # does not raise
    assert "consumer lag not updated" in caplog.text and "broker gone" in caplog.text
    assert lag_series() == {}


def installed(command: str, package: str) -> str:
    path = shutil.which(command)
    if path is None:
        pytest.fail(f"`{command}` is not installed: run `make tools` (or `apt-get install {package}`)")
    return path


def run_tool(*args) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(map(str, args))}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"]
            for rule in group["rules"]]


def test_alert_rules_pass_promtool_and_each_has_a_firing_and_a_quiet_case():
    promtool = installed("promtool", "prometheus")
    run_tool(promtool, "check", "rules", DEPLOY / "alerts.yml")
    run_tool(promtool, "test", "rules", DEPLOY / "alerts.test.yml")
    cases = [case for test in yaml.safe_load((DEPLOY / "alerts.test.yml").read_text())["tests"]
             for case in test["alert_rule_test"]]
    for rule in alert_rules():
        expected = [case["exp_alerts"] for case in cases if case["alertname"] == rule["alert"]]
        assert any(expected) and [] in expected, f"{rule['alert']}: needs a firing and a quiet case"


def prometheus_config() -> dict:
    """deploy/prometheus.yml as it runs here: its rule files are the ones compose mounts."""
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    files = compose_mounts("prometheus")
    config["rule_files"] = [str(ROOT / files[path]) for path in config["rule_files"]]
    return config


def test_prometheus_config_passes_promtool(tmp_path):
    promtool = installed("promtool", "prometheus")
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config()))
    assert "SUCCESS" in run_tool(promtool, "check", "config", config)


def test_alertmanager_config_is_valid_and_routes_each_severity_to_its_own_receiver():
    amtool = installed("amtool", "prometheus-alertmanager")
    config = f"--config.file={DEPLOY / 'alertmanager.yml'}"
    run_tool(amtool, "check-config", DEPLOY / "alertmanager.yml")
    receivers: dict[str, set[str]] = defaultdict(set)
    for rule in alert_rules():
        labels = {"alertname": rule["alert"], **rule["labels"]}
        receiver = run_tool(amtool, "config", "routes", "test", config,
                            *(f"{k}={v}" for k, v in labels.items())).strip()
        receivers[rule["labels"]["severity"]].add(receiver)
    assert set(receivers) == {"critical", "warning"}
    assert len(receivers["critical"]) == len(receivers["warning"]) == 1
    assert receivers["critical"] != receivers["warning"]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_has_a_severity_and_a_runbook_section_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    runbook = readme.split("\n## Runbook\n", 1)[1].split("\n## ", 1)[0]
    sections = {github_anchor(h): h for h in re.findall(r"^### (.+)$", runbook, re.M)}
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "README.md" and anchor in sections, (rule["alert"], rule["annotations"]["runbook"])
        assert sections[anchor] == rule["alert"]


# --- a real Prometheus on a real worker -------------------------------------------------------

def wait_for(condition: Callable[[], object], what: str, timeout: float = 60.0, detail: Callable[[], str] = str):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout:.0f} s\n{detail()}")
        time.sleep(0.3)
    return result


def http_json(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:  # Prometheus answers a bad query with 400 and why
        return json.load(exc)


@contextmanager
def prometheus(tmp_path: Path, config: dict) -> Iterator[str]:
    """A Prometheus server on a free loopback port with `config`; yields its URL."""
    binary = installed("prometheus", "prometheus")
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{free_port()}"
    log_path = tmp_path / "prometheus.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address={url.removeprefix('http://')}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        def ready() -> bool:
            assert process.poll() is None, f"prometheus exited:\n{log_path.read_text()[-3000:]}"
            try:
                return urllib.request.urlopen(url + "/-/ready", timeout=2).status == 200
            except OSError:
                return False

        wait_for(ready, "Prometheus ready", 30, lambda: log_path.read_text()[-3000:])
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def query(url: str, promql: str) -> list[dict]:
    body = http_json(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    assert body["status"] == "success", f"{promql}: {body.get('error')}"
    return body["data"]["result"]


def _top_level(expr: str) -> str:
    """`expr` with bracketed and quoted text blanked: what an operator found in it applies to the whole."""
    out, depth, quote = [], 0, None
    for ch in expr:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'`":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        out.append(ch if depth == 0 and not quote and ch not in "\"'`)]}" else " ")
    return "".join(out)


def alert_reads(expr: str) -> list[str]:
    """The queries an alert's expression compares: split at top-level and/or/unless, each side's
    top-level comparison dropped, absent(...) unwrapped. An alert over a query that returns no
    series can never fire (or, under absent, always would), so each must return series."""
    expr = expr.strip()
    top = _top_level(expr)
    parts = re.split(r"\b(?:and|or|unless)\b", top)
    if len(parts) > 1:
        bounds = [0] + [m.end() for m in re.finditer(r"\b(?:and|or|unless)\b", top)]
        pieces = [expr[b:b + len(p)] for b, p in zip(bounds, parts)]
        return [q for piece in pieces for q in alert_reads(piece)]
    comparison = re.search(r"==|!=|>=|<=|>|<", top)
    if comparison:
        return alert_reads(expr[:comparison.start()])
    absent = re.fullmatch(r"absent\s*\((.*)\)", expr, re.S)
    return alert_reads(absent.group(1)) if absent else [expr]


def test_alert_reads_splits_set_operators_drops_comparisons_and_unwraps_absent():
    assert alert_reads('a{x=~"1|2"} > 3 and b{y="<"} == 0') == ['a{x=~"1|2"}', 'b{y="<"}']
    assert alert_reads('max by (t) (deriv(m[10m])) > 0\nand sum(m) > 1') == ["max by (t) (deriv(m[10m]))", "sum(m)"]
    assert alert_reads('absent(up{job="w"} == 1)') == ['up{job="w"}']
    assert alert_reads("sum(rate(r[5m])) / clamp_min(sum(rate(e[5m])), 1) > 0.05") == \
        ["sum(rate(r[5m])) / clamp_min(sum(rate(e[5m])), 1)"]


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel target, Grafana's variables made concrete."""
    found = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"{panel['title']}: a Grafana variable this test does not know: {expr}"
            found.append((panel["title"], expr))
    return found



@pytest.mark.broker
@pytest.mark.timeout(180)
def test_prometheus_scraping_a_worker_answers_every_panel_and_alert(cluster, tmp_path):
    items, events = generate(300, 30, seed=5)
    assert {e["type"] for e in events} == {"browse", "purchase", "review"}
    publish_items(cluster.settings, items)
    publish_events(producer(cluster.settings.broker_info()), cluster.settings, events)
    bad = malformed_records()[:8]  # six DLQ reasons
    raw = KafkaProducer(bootstrap_servers=cluster.broker.bootstrap)
    for topic, key, value, _ in bad:
        raw.send(topic, key=key, value=value)
    raw.flush()

    worker = cluster.worker()
    config = prometheus_config()
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    del config["alerting"]  # no Alertmanager here; the rules are evaluated all the same
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [worker.url.removeprefix("http://")]}]
    with prometheus(tmp_path / "prometheus", config) as url:
        worker.wait_ready()
        users = len({e["user_id"] for e in events})
        partitions = cluster.settings.partitions
        wait_for(lambda: worker.accepted_events() == len(events)
                 and worker.metric("strata_events_rejected_total") == len(bad)
                 and worker.metric("strata_profiles_emitted_total") >= users
                 and worker.get("/metrics")[1].count(b"\nstrata_consumer_lag{") == 4 * partitions,
                 "the worker took every event, rejected the bad ones, profiled every user and reports lag",
                 detail=worker.log_tail)
        # Faust's own sensor counts the event topics' records, though they skip its streams (streams/feed.py).
        received = sum(worker.metric("strata_messages_received_per_topic_total", f'topic="{event_topic(cluster.settings, t)}"')
                       for t in EVENT_TYPES)
        assert received == len(events) + len(bad)
        # Two more scrapes and rule evaluations, so every series has the two samples rate() needs.
        settled = time.time() + 2.5
        wait_for(lambda: any(float(r["value"][1]) > settled
                             for r in query(url, 'timestamp(up{job="strata-workers"} == 1)')),
                 "Prometheus scraped the worker")

        def rules() -> list[dict]:
            groups = http_json(f"{url}/api/v1/rules")["data"]["groups"]
            return [rule for group in groups for rule in group["rules"]]

        wait_for(lambda: all(datetime.fromisoformat(r["lastEvaluation"]).timestamp() > settled for r in rules()),
                 "Prometheus evaluated the rules")
        loaded = rules()
        assert {r["name"] for r in loaded} == {r["alert"] for r in alert_rules()}
        assert all(r["health"] == "ok" for r in loaded), [(r["name"], r.get("lastError")) for r in loaded]

        empty = [(title, expr) for title, expr in dashboard_queries() if not query(url, expr)]
        assert not empty, f"dashboard panels without data: {empty}"
        for rule in alert_rules():
            query(url, rule["expr"])  # valid as a whole
            empty = [expr for expr in alert_reads(rule["expr"]) if not query(url, expr)]
            assert not empty, f"{rule['alert']} reads nothing from: {empty}"


def lag_partitions(worker) -> set[tuple[str, str]]:
    """(topic, partition) of the lag series a worker exports now."""
    try:
        text = worker.get("/metrics")[1].decode()
    except OSError:
        return set()
    return {(labels["topic"], labels["partition"]) for labels in
            (dict(re.findall(r'(\w+)="([^"]*)"', line)) for line in text.splitlines()
             if line.startswith("strata_consumer_lag{"))}


@pytest.mark.broker
@pytest.mark.timeout(180)
def test_a_worker_stops_reporting_the_lag_of_partitions_it_lost(cluster):
    s = cluster.settings
    events = {(s.topic(f"events.{t}"), str(p)) for t in ("browse", "purchase", "review") for p in range(s.partitions)}
    catalogue = {(s.topic("items"), str(p)) for p in range(s.partitions)}
    w1 = cluster.worker("w1")
    w1.wait_ready()
    wait_for(lambda: lag_partitions(w1) == events | catalogue, "w1 reports every partition", detail=w1.log_tail)
    w2 = cluster.worker("w2")
    w2.wait_ready()

    def split() -> bool:
        # Every event partition reported by exactly one worker; both read the whole catalogue.
        first, second = lag_partitions(w1), lag_partitions(w2)
        return (first & catalogue == second & catalogue == catalogue and not (first & second & events)
                and (first | second) & events == events and first & events and second & events)

    wait_for(split, "the event partitions' lag split between the workers",
             detail=lambda: f"w1 {sorted(lag_partitions(w1))}\nw2 {sorted(lag_partitions(w2))}\n{w1.log_tail()}")
