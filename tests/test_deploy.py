"""docker-compose.yml and the image cannot run here: check that they parse, name only what the code
has, that the packaging (constraints, non-root user, health probe, .dockerignore) holds, and that
the monitoring services (Prometheus, Alertmanager, Grafana) find each other and their files."""
import json
import re
from dataclasses import fields
from importlib.metadata import requires
from pathlib import Path

import yaml
from faust.sensors.prometheus import FaustMetrics
from packaging.requirements import Requirement
from prometheus_client import CollectorRegistry
from packaging.utils import canonicalize_name

from ops.cli import cli
from streams import metrics
from streams.settings import Settings

ROOT = Path(__file__).parent.parent


def _compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_kafka_topic_setup_two_workers_and_monitoring():
    services = _compose()["services"]
    assert {"kafka", "topics", "worker1", "worker2", "prometheus", "alertmanager", "grafana"} <= set(services)
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


def _prometheus() -> dict:
    return yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())


def _dashboard() -> dict:
    return json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "strata.json").read_text())


def test_prometheus_scrapes_the_workers_and_alerts_and_dashboard_use_real_metrics():
    services = _compose()["services"]
    targets = _prometheus()["scrape_configs"][0]["static_configs"][0]["targets"]
    for t in targets:
        host, port = t.split(":")
        assert services[host]["environment"]["STRATA_WEB_PORT"] == port
    faust = CollectorRegistry()  # Faust's sensor names its metrics after the app id
    FaustMetrics.create(faust, next(f.default for f in fields(Settings) if f.name == "app_id"))
    known = {m._name for m in vars(metrics).values() if hasattr(m, "_name")} | {m.name for m in faust.collect()}
    rules = yaml.safe_load((ROOT / "deploy" / "alerts.yml").read_text())["groups"][0]["rules"]
    queries = [r["expr"] for r in rules] + [t["expr"] for p in _dashboard()["panels"] for t in p.get("targets", [])]
    used = {n for q in queries for n in re.findall(r"strata_[a-z_]+", q)}
    for name in used:
        base = re.sub(r"_(total|bucket|sum|count)$", "", name)
        assert base in known, f"unknown metric {name}"


def compose_mounts(service: str) -> dict[str, str]:
    """Container path -> checkout path (relative, './...') of what compose bind-mounts into `service`."""
    return {inside: outside for outside, inside, *_ in (v.split(":") for v in _compose()["services"][service]["volumes"])
            if outside.startswith("./")}


def test_every_file_compose_mounts_exists_and_monitoring_mounts_are_read_only():
    for name, svc in _compose()["services"].items():
        for volume in svc.get("volumes", []):
            outside, inside, *mode = volume.split(":")
            if not outside.startswith("./"):
                continue  # a named volume
            if outside != "./checkpoints":  # created by the trainer (see README, Packaging)
                assert (ROOT / outside).exists(), f"{name} mounts {outside}, which is not in the checkout"
            if name in ("prometheus", "alertmanager", "grafana"):
                assert mode == ["ro"], f"{name}: {volume} should be read-only"


def test_every_published_port_is_on_the_hosts_loopback_and_images_are_pinned():
    for name, svc in _compose()["services"].items():
        assert all(p.startswith("127.0.0.1:") for p in svc.get("ports", [])), (name, svc["ports"])
        image = svc.get("image", "")
        if image != "strata:latest":  # ours, built from the checkout
            repository, _, tag = image.partition(":")
            assert repository and tag and tag != "latest", f"{name}: pin the image tag ({image!r})"


def test_prometheus_sends_alerts_to_the_alertmanager_service():
    compose = _compose()
    (manager,) = _prometheus()["alerting"]["alertmanagers"]
    (target,) = manager["static_configs"][0]["targets"]
    host, port = target.split(":")
    alertmanager = compose["services"][host]
    assert alertmanager["image"].startswith("prom/alertmanager:")
    assert any(p.endswith(f":{port}") for p in alertmanager["ports"])  # Alertmanager listens on 9093
    config = next(arg.split("=", 1)[1] for arg in alertmanager["command"] if arg.startswith("--config.file="))
    assert compose_mounts(host)[config] == "./deploy/alertmanager.yml"
    assert host in compose["services"]["prometheus"]["depends_on"]


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard():
    services = _compose()["services"]
    grafana = services["grafana"]
    mounts = compose_mounts("grafana")
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    assert "127.0.0.1:3000:3000" in grafana["ports"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true" and env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD")
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    host, port = source["url"].removeprefix("http://").split(":")
    assert source["type"] == "prometheus" and host == "prometheus" and any(
        p.endswith(f":{port}") for p in services[host]["ports"])
    # $__rate_interval is at least four scrape intervals only when Grafana knows the interval.
    assert source["jsonData"]["timeInterval"] == _prometheus()["global"]["scrape_interval"]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "strata.yml").read_text())["providers"]
    dashboards = ROOT / mounts[provider["options"]["path"]]
    assert (dashboards / "strata.json").is_file()
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.rsplit("/", 1) == [provider["options"]["path"], "strata.json"]
    panels = [p for p in _dashboard()["panels"] if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["targets"] and panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert all(t["datasource"]["uid"] == source["uid"] for t in panel["targets"]), panel["title"]


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined, comments dropped."""
    lines = [line for line in (ROOT / "deploy" / "Dockerfile").read_text().splitlines()
             if not line.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines() if line.strip()]


def test_image_runs_as_a_non_root_user_it_creates():
    steps = _dockerfile()
    users = [args.strip() for op, args in steps if op == "USER"]
    assert users and users[-1] not in ("root", "0"), users
    assert any(op == "RUN" and "useradd" in args and args.rstrip().endswith(users[-1]) for op, args in steps)
    last_user = max(i for i, (op, _) in enumerate(steps) if op == "USER")
    assert all(i > last_user for i, (op, _) in enumerate(steps) if op in ("ENTRYPOINT", "CMD"))


def test_image_probes_the_workers_ready_page_on_the_port_it_sets():
    steps = _dockerfile()
    env = dict(pair.split("=", 1) for op, args in steps if op == "ENV" for pair in args.split())
    settings = {f"STRATA_{f.name.upper()}" for f in fields(Settings)}
    assert set(env) <= settings, set(env) - settings
    probes = [args for op, args in steps if op == "HEALTHCHECK"]
    assert len(probes) == 1 and "/ready/" in probes[0] and "STRATA_WEB_PORT" in probes[0]
    python, flag, code = json.loads(probes[0].split(" CMD ", 1)[1])  # exec form: Docker reads it as JSON
    assert (python, flag) == ("python", "-c")
    compile(code, "HEALTHCHECK", "exec")
    assert '@app.page("/ready/")' in (ROOT / "streams" / "views.py").read_text()
    for name, svc in _compose()["services"].items():
        if svc.get("image") == "strata:latest":
            # Workers keep the probe; one-shot jobs serve no HTTP and would only ever be unhealthy.
            disabled = svc.get("healthcheck", {}).get("disable", False)
            assert disabled == (svc["command"] != ["worker"]), name
            if svc["command"] == ["worker"]:
                assert svc["environment"]["STRATA_WEB_BIND"] == "0.0.0.0"  # reachable from the other worker


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version and re.fullmatch(r"[0-9][0-9A-Za-z.]*", version), line  # no +local build, no URL
            pins[canonicalize_name(name)] = version
    return pins


def test_constraints_pin_every_requirement_within_its_range():
    pins = _constraints()
    assert "strata" not in pins
    for text in requires("strata"):
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pins, f"{name} is not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (text, pins[name])


def test_make_and_the_image_install_with_the_constraints():
    project = [line for line in (ROOT / "Makefile").read_text().splitlines() if "pip install" in line and "-e " in line]
    assert project and all("-c constraints.txt" in line for line in project), project
    steps = _dockerfile()
    installs = [i for i, (op, args) in enumerate(steps) if op == "RUN" and "pip install" in args]
    copied = next(i for i, (op, args) in enumerate(steps) if op == "COPY" and "constraints.txt" in args.split())
    assert installs and copied < installs[0]
    for i in installs:
        for command in steps[i][1].split("&&"):
            assert "pip install" not in command or "-c constraints.txt" in command, command
    (torch,) = [args for op, args in steps if op == "RUN" and re.search(r"pip install .*\btorch\b", args)]
    assert "--no-deps" in torch and "/whl/cpu" in torch  # the CPU build; its dependencies come pinned later


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: a pattern matching the path or a folder above it excludes it ('**' spans folders)."""
    parts = path.split("/")
    for pattern in patterns:
        regex = "".join("(.*/)?" if tok == "**/" else "[^/]*" if tok == "*" else "[^/]" if tok == "?"
                        else re.escape(tok) for tok in re.findall(r"\*\*/|\*|\?|[^*?]+", pattern))
        if any(re.fullmatch(regex, "/".join(parts[:i])) for i in range(1, len(parts) + 1)):
            return True
    return False


def test_dockerignore_keeps_local_state_out_and_everything_copied_in():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns)  # _dockerignored does not model exceptions
    for local in (".venv/bin/python", ".git/HEAD", "data/worker/x.sst", "checkpoints/LATEST", ".cache/strata/x.whl",
                  "model/__pycache__/x.pyc"):
        assert _dockerignored(local, patterns), local
    sources = [word for op, args in _dockerfile() if op == "COPY" for word in args.split()[:-1]]
    assert {"constraints.txt", "ops", "model", "streams", "state"} <= set(sources)
    for source in sources:
        path = ROOT / source
        files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file() and "__pycache__" not in f.parts]
        assert files, source
        for f in files:
            assert not _dockerignored(f.relative_to(ROOT).as_posix(), patterns), f


def test_the_host_reaches_kafka_kafka_keeps_its_data_and_workers_come_back():
    compose = _compose()
    kafka = compose["services"]["kafka"]
    env = kafka["environment"]
    advertised = dict(listener.split("://") for listener in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    bound = dict(listener.split("://") for listener in env["KAFKA_LISTENERS"].split(","))
    protocols = dict(pair.split(":") for pair in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    # Containers use the name the compose network resolves; the host a published localhost port.
    assert compose["x-strata"]["environment"]["STRATA_BROKER"] == f"kafka://{advertised['PLAINTEXT']}"
    host, port = advertised["HOST"].rsplit(":", 1)
    assert host == "localhost" and bound["HOST"] == f":{port}" and "HOST" in protocols
    assert f"127.0.0.1:{port}:{port}" in kafka["ports"]
    data = [v.split(":") for v in kafka["volumes"]]
    assert [name for name, path in data if path == env["KAFKA_LOG_DIRS"]] == ["kafka-data"]
    assert "kafka-data" in compose["volumes"]
    for name in ("worker1", "worker2"):
        assert compose["services"][name]["restart"] in ("always", "unless-stopped")
