import subprocess
import sys

import pytest
from click.testing import CliRunner

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
    assert '"event_id"' in out.stdout


def test_bad_setting_and_unreachable_broker_are_one_clear_line(monkeypatch):
    monkeypatch.setenv("STRATA_PARTITIONS", "many")
    result = CliRunner().invoke(cli, ["topics", "create", "--broker", "kafka://127.0.0.1:1"])
    assert result.exit_code == 2 and "bad setting" in result.output
    monkeypatch.delenv("STRATA_PARTITIONS")
    result = CliRunner().invoke(cli, ["tail", "profiles", "--broker", "kafka://127.0.0.1:1"])
    assert result.exit_code == 1 and "the broker did not answer" in result.output
