"""docker-compose.yml cannot run here: check it parses and names only what the code has."""
import re
from dataclasses import fields
from pathlib import Path

import yaml

from ops.cli import cli
from streams import metrics
from streams.settings import Settings

ROOT = Path(__file__).parent.parent


def _compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_kafka_topic_setup_two_workers_and_prometheus():
    services = _compose()["services"]
    assert {"kafka", "topics", "worker1", "worker2", "prometheus"} <= set(services)
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert services["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert (ROOT / services["worker1"]["build"]["dockerfile"]).exists()


def test_strata_services_use_real_commands_and_settings():
    settings = {f"STRATA_{f.name.upper()}" for f in fields(Settings)}
    for name, svc in _compose()["services"].items():
        if svc.get("image") != "strata:latest":
            continue
        command, cmd = cli, []
        for word in svc["command"]:
            if word not in getattr(command, "commands", {}):
                break
            command = command.commands[word]
            cmd.append(word)
        options = {o for p in command.params for o in p.opts}
        flags = [w for w in svc["command"] if w.startswith("--")]
        assert cmd and set(flags) <= options, (name, svc["command"])
        for var, value in svc["environment"].items():
            assert var in settings, f"{name}: {var} is not a Strata setting"
        assert svc["environment"]["STRATA_BROKER"].startswith("kafka://kafka:")
        if cmd == ["worker"]:
            port = svc["environment"]["STRATA_WEB_PORT"]
            assert any(p.endswith(f":{port}") for p in svc["ports"])
            # Published on the host's loopback only; /profiles asks for the token when one is set.
            assert all(p.startswith("127.0.0.1:") for p in svc["ports"]), svc["ports"]
            assert "STRATA_HTTP_TOKEN" in svc["environment"]


def test_prometheus_scrapes_the_workers_and_alerts_use_real_metrics():
    services = _compose()["services"]
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    targets = prom["scrape_configs"][0]["static_configs"][0]["targets"]
    for t in targets:
        host, port = t.split(":")
        assert services[host]["environment"]["STRATA_WEB_PORT"] == port
    known = {m._name for m in vars(metrics).values() if hasattr(m, "_name")}
    rules = yaml.safe_load((ROOT / "deploy" / "alerts.yml").read_text())["groups"][0]["rules"]
    used = {n for r in rules for n in re.findall(r"strata_[a-z_]+", r["expr"])}
    for name in used:
        base = re.sub(r"_(total|bucket|sum|count)$", "", name)
        assert base in known, f"alert uses unknown metric {name}"
