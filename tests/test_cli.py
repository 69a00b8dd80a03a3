import json
import os
import subprocess
import sys
from importlib.metadata import version

import pytest
from click.testing import CliRunner
from conftest import GOOD, malformed_records

from model.documents import encode, json_schemas, schema_file
from ops.broker import free_port
from ops.cli import cli


def _commands(group, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,)
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, prefix + (name,))


@pytest.mark.parametrize("path", list(_commands(cli)))
def test_every_command_has_help(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_worker_without_broker_says_what_to_do(monkeypatch):
    monkeypatch.delenv("STRATA_BROKER", raising=False)
    result = CliRunner().invoke(cli, ["worker"])
    assert result.exit_code == 2
    assert "no broker given" in result.output and "strata broker" in result.output


def test_bad_broker_url_is_explained():
    result = CliRunner().invoke(cli, ["tail", "profiles", "--broker", "http://x:1"])
    assert result.exit_code == 2 and "kafka://HOST:PORT" in result.output


def test_schema_command_prints_the_event_schema():
    out = subprocess.run([sys.executable, "-m", "ops.cli", "schema"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == json_schemas()["event"]


def test_schema_command_prints_any_document_s_schema_or_writes_them_all(tmp_path):
    result = CliRunner().invoke(cli, ["schema", "dlq"])
    assert result.exit_code == 0 and json.loads(result.output) == json_schemas()["dlq"]
    result = CliRunner().invoke(cli, ["schema", "--dir", str(tmp_path / "out")])
    assert result.exit_code == 0
    for schema in json_schemas().values():
        assert json.loads((tmp_path / "out" / schema_file(schema)).read_text("utf-8")) == schema
    result = CliRunner().invoke(cli, ["schema", "nothing"])
    assert result.exit_code == 2 and "event, item, profile, recommendations, dlq" in result.output


def test_version_is_the_installed_package_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.output == f"strata {version('strata')}\n"


def _strata(*args, **env):
    """`strata ARGS` as a user runs it: what it prints on each stream and its exit status."""
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


@pytest.mark.parametrize("variable, value, message", [
    ("STRATA_PARTITIONS", "many", "STRATA_PARTITIONS: expected an integer, got 'many'"),
    ("STRATA_PARTITIONS", "0", "STRATA_PARTITIONS=0: must be at least 1"),
    ("STRATA_SECURITY_PROTOCOL", "TLS",
     "STRATA_SECURITY_PROTOCOL='TLS': choose one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
])
def test_bad_setting_is_one_line_naming_the_variable(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    result = CliRunner().invoke(cli, ["tail", "profiles", "--broker", "kafka://127.0.0.1:1"])
    assert result.exit_code == 1 and result.output == f"Error: {message}\n"


def test_a_worker_with_a_bad_setting_stops_with_one_line():
    worker = _strata("worker", "--broker", "kafka://127.0.0.1:1", STRATA_PROFILE_INTERVAL_S="soon")
    assert worker.returncode == 1 and worker.stdout == ""
    assert worker.stderr == "Error: STRATA_PROFILE_INTERVAL_S: expected a finite number, got 'soon'\n"


def test_unreachable_broker_is_one_line_and_a_failure():
    url = f"kafka://127.0.0.1:{free_port()}"  # nothing listens there
    for command in (["topics", "create"], ["tail", "profiles"]):
        result = _strata(*command, "--broker", url, STRATA_CONNECT_TIMEOUT_S="0.5")
        assert result.returncode == 1 and result.stdout == "", command
        assert result.stderr == (f"Error: cannot reach the broker at {url} within 0.5 s (Connection refused): "
                                 "is it running? (STRATA_BROKER / --broker)\n"), command


def test_validate_says_per_line_what_the_dlq_says_of_the_malformed_corpus(tmp_path):
    # The pipeline test checks the DLQ gives these codes; offline, every check but the key's applies.
    by_type: dict[str, list[tuple[bytes, str]]] = {}
    for topic, _key, value, code in malformed_records():
        if code != "key_mismatch":
            assert b"\n" not in value
            by_type.setdefault(topic.split(".")[1], []).append((value, code))
    for topic_type, records in by_type.items():
        path = tmp_path / f"{topic_type}.jsonl"
        path.write_bytes(b"\n".join([encode({**GOOD, "type": topic_type})] + [v for v, _ in records]) + b"\n\n")
        result = CliRunner().invoke(cli, ["validate", str(path), "--type", topic_type, "--json"])
        assert result.exit_code == 1, result.output
        found = [json.loads(line) for line in result.stdout.splitlines()]
        assert [f["error"]["code"] for f in found] == [code for _, code in records]
        assert [f["line"] for f in found] == list(range(2, len(records) + 2))
        assert f"{len(records) + 1} records: 1 valid, {len(records)} refused" in result.stderr


def test_validate_passes_a_clean_file(tmp_path):
    path = tmp_path / "ok.jsonl"
    path.write_bytes(encode(GOOD) + b"\n")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0 and "1 records: 1 valid, 0 refused" in result.stderr
