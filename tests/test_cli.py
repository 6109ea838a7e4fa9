"""The `alignbot` command as a user runs it: config check, db upgrade, drift, run's refusals."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bot.cli import app
from bot.lifecycle import apply_detection
from store.db import make_engine, session_scope
from store.migrate import head_revision, upgrade
from tests.support.builders import NOW, config, demand_drift, recommendation_for

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "alignbot.example.yml"
runner = CliRunner()


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "alignbot.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_every_subcommand_has_help():
    for command in (["run"], ["demo"], ["db", "upgrade"], ["config", "check"], ["drift"],
                    ["inspect"], ["detect"], ["digest"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, command
        assert "Usage" in result.output


def test_config_check_names_each_broken_key_path(tmp_path):
    broken = yaml.safe_load(EXAMPLE.read_text())
    del broken["teams"][1]["channel"]
    broken["teams"][0]["timezone"] = "Mars/Olympus"
    broken["connectors"][0]["schedule"] = {"every": "5m", "cron": "* * * * *"}
    broken["teams"][0]["channel"] = "#planning"  # posts fine, but crash recovery needs the id
    result = subprocess.run([str(ROOT / ".venv/bin/alignbot"), "config", "check", "--config",
                             str(_write(tmp_path, broken))], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "teams[1].channel: field required" in result.stderr
    assert "teams[0].timezone: unknown time zone 'Mars/Olympus'" in result.stderr
    assert "teams[0].channel: '#planning' is not a Slack channel id" in result.stderr
    assert "connectors[0].schedule: give exactly one of 'every'" in result.stderr


def test_config_check_names_the_missing_environment_variable(tmp_path):
    data = yaml.safe_load(EXAMPLE.read_text())
    data["connectors"][0]["secrets"] = {"auth.token": "PLAN_API_TOKEN"}
    data["connectors"][0]["settings"]["auth"] = {"kind": "bearer"}
    path = _write(tmp_path, data)
    env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "TMS_WEBHOOK_SECRET": "w"}
    missing = runner.invoke(app, ["config", "check", "--config", str(path)], env=env)
    assert missing.exit_code == 2
    assert ("connectors[0].secrets.auth.token: environment variable PLAN_API_TOKEN is not set"
            in missing.output)
    ok = runner.invoke(app, ["config", "check", "--config", str(path)],
                       env={**env, "PLAN_API_TOKEN": "t"})
    assert ok.exit_code == 0 and "ok" in ok.output


def test_unmigrated_database_is_refused_with_the_command_to_run(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "TMS_WEBHOOK_SECRET": "w",
           "DATABASE_URL": url}
    result = runner.invoke(app, ["run", "--config", str(EXAMPLE)], env=env)
    assert result.exit_code == 1
    assert "Run `alignbot db upgrade` first" in result.output

    upgraded = runner.invoke(app, ["db", "upgrade", "--config", str(EXAMPLE)], env=env)
    assert upgraded.exit_code == 0 and f"revision {head_revision()}" in upgraded.output


def test_drift_prints_open_drift_worst_first(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    upgrade(url)
    empty = runner.invoke(app, ["drift", "--database-url", url])
    assert empty.exit_code == 0 and "No open drift" in empty.output
    small, big = demand_drift(sku="SKU-1", latest=1100), demand_drift(sku="SKU-2", latest=3000)
    with session_scope(make_engine(url)) as s:
        apply_detection(s, [small, big], [recommendation_for(small), recommendation_for(big)],
                        config(), NOW)
    result = runner.invoke(app, ["drift", "--database-url", url], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert result.output.index("SKU-2") < result.output.index("SKU-1")  # high before medium
    assert "50,000" in result.output


SLACK_ENV = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "TMS_WEBHOOK_SECRET": "w"}
BAD_DATABASE_URLS = {  # what is wrong → (DATABASE_URL, what the one line must say)
    "refused": ("postgresql://u:secret@127.0.0.1:1/db",
                "database postgresql://u:***@127.0.0.1:1/db: connection failed"),
    "unknown dialect": ("foo://u:secret@x/db",
                        "database foo://u:***@x/db: unknown kind of database 'foo'"),
    "port not a number": ("postgresql://u:secret@host:port/db",
                          "database postgresql://u:***@host:port/db: not a valid database URL"),
    "unencoded @ in password": ("postgresql://u:p@ss:secret@127.0.0.1:1/db",
                                "database postgresql://u:***@127.0.0.1:1/db: not a valid "),
    "no URL at all": ("not a url", "database not a url: not a valid database URL"),
    "unknown host": ("postgresql://u:secret@no-such-host.invalid/db",
                     "database postgresql://u:***@no-such-host.invalid/db: "),
    "no driver": ("mysql://u:secret@h/db", "database mysql://u:***@h/db: "),
    "password in the query": ("postgresql://u@127.0.0.1:1/db?password=secret",
                              "database postgresql://u@127.0.0.1:1/db?password=***: "),
}
# A URL of the wrong form is a configuration problem, reported with the others before anything
# starts; one of the right form that does not open is a runtime error.
WRONG_FORM = {"unknown dialect", "port not a number", "unencoded @ in password", "no URL at all",
              "no driver"}
COMMANDS = {"run": ["run"], "db upgrade": ["db", "upgrade"], "drift": ["drift"]}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("problem", BAD_DATABASE_URLS)
def test_a_bad_database_url_is_one_line_with_the_password_masked(command, problem):
    url, says = BAD_DATABASE_URLS[problem]
    result = runner.invoke(app, [*COMMANDS[command], "--config", str(EXAMPLE)],
                           env={**SLACK_ENV, "DATABASE_URL": url})
    assert isinstance(result.exception, SystemExit), result.exception  # not a traceback
    assert "secret" not in result.output
    # (only the error lines: other tests' servers in this process may log to the same stderr)
    if problem in WRONG_FORM:
        assert result.exit_code == 2
        (line,) = [line for line in result.output.splitlines() if "$DATABASE_URL" in line]
        assert line.startswith("  $DATABASE_URL: " + says), line
    else:
        assert result.exit_code == 1
        (line,) = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert line.startswith("error: " + says), line


@pytest.mark.parametrize("command", COMMANDS)
def test_a_refused_database_connection_is_all_that_is_printed(command, tmp_path):
    url, says = BAD_DATABASE_URLS["refused"]
    result = subprocess.run([str(ROOT / ".venv/bin/alignbot"), *COMMANDS[command], "--config",
                             str(EXAMPLE)], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env={**os.environ, **SLACK_ENV, "DATABASE_URL": url})
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: " + says), result.stderr


def test_an_unreachable_database_fails_within_seconds(tmp_path):
    """A server that takes the connection but never answers (as a firewall dropping packets
    would leave it) is given up on after the connect timeout, not waited for."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"postgresql://u:secret@127.0.0.1:{silent.getsockname()[1]}/db"
        started = time.monotonic()
        result = subprocess.run([str(ROOT / ".venv/bin/alignbot"), "drift", "--database-url",
                                 url], capture_output=True, text=True, timeout=60,
                                cwd=tmp_path)
        took = time.monotonic() - started
    assert result.returncode == 1
    assert "secret" not in result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: database postgresql://u:***@127.0.0.1:"), line
    assert "timeout" in line
    assert took < 20


@pytest.mark.parametrize("command", [[], ["run"], ["worker"], ["detect"], ["digest"]])
def test_help_shows_flags_as_flags_and_loads_no_engine(command):
    """`--help` answers at once: none of the libraries the commands themselves need is imported."""
    code = ("import sys\nfrom bot.cli import app\ntry:\n    app([*sys.argv[1:], '--help'], "
            "prog_name='alignbot')\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('polars', 'sqlalchemy', 'matplotlib', 'slack_bolt', 'rich') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code, *command], capture_output=True,
                            text=True, timeout=60, cwd=ROOT)
    *shown, loaded = result.stdout.splitlines()
    assert loaded == "[]"
    assert "Usage: alignbot" in shown[0] and "<bool>" not in result.stdout
    if command == ["detect"]:
        assert any(line.split()[:1] == ["--json"] for line in shown)


def test_version_is_the_package_version():
    from importlib.metadata import version

    assert runner.invoke(app, ["--version"]).output == f"alignbot {version('alignbot')}\n"
