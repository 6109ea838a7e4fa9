"""`alignbot config check` is the whole truth about a configuration: every problem in one pass,
each at its key path, and every command that reads the file refuses it with the same report."""

from __future__ import annotations

import copy
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from bot.cli import app
from bot.config_check import load_checked_config
from connectors.presets import PRESETS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "alignbot.example.yml"
ENV = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "TMS_WEBHOOK_SECRET": "w",
       "DATABASE_URL": "sqlite:///:memory:"}
runner = CliRunner()


def _example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text())


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "alignbot.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _check(path: Path, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["config", "check", "--config", str(path)], env=env or ENV)


def _problems(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.startswith("  ")]


def _plan(data: dict[str, Any]) -> dict[str, Any]:
    return data["connectors"][0]["settings"]


# What the issue found `config check` saying "ok" to, and what it must say instead.
REFUSED: dict[str, tuple[Callable[[dict[str, Any]], object], str]] = {
    "a typo in a key": (lambda d: _plan(d).update(demand={"pth": "/v1/demand"}),
                        "connectors[0].settings.demand.pth: unknown key; did you mean 'path'?"),
    "a wrong type": (lambda d: _plan(d).update(retry={"max_attempts": "many"}),
                     "connectors[0].settings.retry.max_attempts: input should be a valid integer"),
    "a block where a mapping goes": (lambda d: _plan(d).update(demand="yes"),
                                     "connectors[0].settings.demand: expected a mapping"),
    "bearer auth with no token": (
        lambda d: _plan(d).update(auth={"kind": "bearer"}),
        "connectors[0].settings.auth.token: required; it is a secret, so name the environment "
        "variable that holds it under connectors[0].secrets (e.g. auth.token: MY_SECRET_ENV)"),
    "a base_url that is no URL": (
        lambda d: _plan(d).update(base_url="not a url"),
        "connectors[0].settings.base_url: 'not a url' is not an absolute http(s) URL"),
    "a bad duration": (
        lambda d: d["routing"].update(default_deadline="4 hours"),
        "routing.default_deadline: '4 hours' is not a duration: write a number and a unit: "
        "90s, 30m, 4h, 2d or 1w"),
    "a duration without a unit": (
        lambda d: d["connectors"][1].update(schedule={"every": 5}),
        "connectors[1].schedule.every: 5 has no unit: write a number and a unit"),
    "a bad cron expression": (
        lambda d: d["connectors"][1].update(schedule={"cron": "61 * * * *"}),
        "connectors[1].schedule.cron: '61 * * * *' is not a cron expression"),
    "a secret for a setting the kind lacks": (
        lambda d: d["connectors"][0].update(secrets={"auth.tokn": "PLAN_TOKEN"},
                                            settings={**_plan(d), "auth": {"kind": "bearer",
                                                                           "token": "x"}}),
        "connectors[0].secrets.auth.tokn: unknown key; did you mean 'token'?"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_config_check_refuses_what_the_connector_would(tmp_path, case):
    change, says = REFUSED[case]
    data = _example()
    change(data)
    result = _check(_write(tmp_path, data), env={**ENV, "PLAN_TOKEN": "t"})
    assert result.exit_code == 2, result.output
    assert any(p.startswith(says) for p in _problems(result.output)), result.output


def test_every_problem_is_reported_in_one_pass(tmp_path):
    data = _example()
    data["teams"][0]["timezone"] = "Mars/Olympus"
    del data["teams"][1]["usergroup_id"]
    data["routing"]["rules"][0]["teams"] = ["planning", "logistcs"]
    data["routing"]["rules"][0]["approvals"] = {"planning": 1, "logistcs": 1}
    data["routing"]["rules"][1]["match"] = {"kind": ["disruptoin"], "region": ["esat"]}
    data["routing"]["default_deadline"] = "4 hours"
    _plan(data)["base_urll"] = "http://127.0.0.1:8601"
    data["connectors"][1]["system"] = "logistic"
    data["connectors"].append(copy.deepcopy(data["connectors"][0]))
    data["lifecycle"]["reraise_after"]["rejected"] = "1 week"
    data["slak"] = {}
    result = _check(_write(tmp_path, data), env={**ENV, "DATABASE_URL": "foo://u:pw@h/db"})
    assert result.exit_code == 2
    assert "alignbot.yml: configuration is invalid (13 problems)" in result.output
    assert _problems(result.output) == [
        "teams[0].timezone: unknown time zone 'Mars/Olympus' (use an IANA name like "
        "Europe/Berlin)",
        "teams[1]: a team needs usergroup_id or members, or nobody could approve",
        "routing.default_deadline: '4 hours' is not a duration: write a number and a unit: "
        "90s, 30m, 4h, 2d or 1w",
        "routing.rules[0].teams[1]: unknown team 'logistcs'; did you mean 'logistics'?",
        "routing.rules[1].match.kind[0]: input should be 'demand_change', 'disruption', "
        "'capacity_shift' or 'stockout_risk'; did you mean 'disruption'?",
        "routing.rules[1].match.region[0]: unknown region 'esat'; did you mean 'east'?",
        "lifecycle.reraise_after.rejected: '1 week' is not a duration: write a number and a "
        "unit: 90s, 30m, 4h, 2d or 1w",
        "connectors[0].settings.base_urll: unknown key; did you mean 'base_url'?",
        "connectors[1].system: input should be 'planning' or 'logistics'; did you mean "
        "'logistics'?",
        "connectors[2].name: connector 'plan' is already connectors[0]",
        "connectors[2].settings.base_urll: unknown key; did you mean 'base_url'?",
        "slak: unknown key; did you mean 'slack'?",
        # what the environment lacks, in the same report
        "$DATABASE_URL: database foo://u:***@h/db: unknown kind of database 'foo'; use "
        "sqlite:///path/to/alignbot.db or postgresql://user:password@host:5432/database",
    ]


@pytest.mark.parametrize("reader", [
    {"kind": "csv", "settings": {"path": "/srv/in", "files": [{"glob": "*.csv",
                                                               "entity": "demand"}]}},
    {"kind": "rest", "settings": {"preset": "sap_ibp", "base_url": "https://ibp.example.com",
                                  "auth": {"username": "U"}},
     "secrets": {"auth.password": "IBP_PASSWORD"}},
], ids=["csv", "read-only rest"])
def test_a_connector_that_only_reads_cannot_be_the_one_that_executes(tmp_path, reader):
    data = _example()
    data["connectors"].insert(0, {"name": "source", "system": "planning", **reader})
    refused = _check(_write(tmp_path, data), env={**ENV, "IBP_PASSWORD": "p"})
    assert refused.exit_code == 2
    assert _problems(refused.output) == [
        "connectors[0].executes: approved planning actions would go to this connector and be "
        f"refused ({'a csv connector only reads' if reader['kind'] == 'csv' else 'read_only: true'}"
        "); set executes: false, or list the connector that carries them out first"]
    data["connectors"][0]["executes"] = False
    assert _check(_write(tmp_path, data), env={**ENV, "IBP_PASSWORD": "p"}).exit_code == 0


def test_the_example_checks_ok_and_missing_secrets_are_part_of_the_report(tmp_path):
    ok = _check(EXAMPLE)
    assert ok.exit_code == 0, ok.output
    assert "alignbot.example.yml: ok — 2 teams, 3 routing rules, 2 connectors" in ok.output

    missing = _check(EXAMPLE, env={"DATABASE_URL": "sqlite:///:memory:"})
    assert missing.exit_code == 2
    assert _problems(missing.output) == [
        "slack.bot_token_env: environment variable SLACK_BOT_TOKEN is not set",
        "slack.signing_secret_env: environment variable SLACK_SIGNING_SECRET is not set",
        "connectors[1].webhook_secret_env: environment variable TMS_WEBHOOK_SECRET is not set",
    ]
    no_slack = runner.invoke(app, ["config", "check", "--no-slack", "--config", str(EXAMPLE)],
                             env={"DATABASE_URL": "sqlite:///:memory:", "TMS_WEBHOOK_SECRET": "w"})
    assert no_slack.exit_code == 0, no_slack.output


def test_run_refuses_a_bad_file_with_the_same_report_and_no_traceback(tmp_path):
    data = _example()
    _plan(data)["auth"] = {"kind": "bearer"}
    data["routing"]["rules"][1]["teams"] = ["logistic"]
    path = _write(tmp_path, data)
    env = {**os.environ, **ENV}
    alignbot = str(ROOT / ".venv/bin/alignbot")
    checked = subprocess.run([alignbot, "config", "check", "--config", str(path)],
                             capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    ran = subprocess.run([alignbot, "run", "--config", str(path)], capture_output=True,
                         text=True, timeout=60, env=env, cwd=tmp_path)
    assert checked.returncode == ran.returncode == 2
    assert ran.stderr == checked.stderr
    assert "Traceback" not in ran.stderr and ran.stdout == ""
    assert "routing.rules[1].teams[0]: unknown team 'logistic'; did you mean 'logistics'?" \
        in ran.stderr
    assert "connectors[0].settings.auth.token: required" in ran.stderr


@pytest.mark.parametrize("command", [["ingress"], ["worker"], ["db", "upgrade"], ["drift"],
                                     ["digest", "--team", "planning"]])
def test_every_command_that_reads_the_file_refuses_it_the_same_way(tmp_path, command):
    data = _example()
    data["teams"][0]["nmae"] = "x"
    result = runner.invoke(app, [*command, "--config", str(_write(tmp_path, data))], env=ENV)
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2
    assert _problems(result.output) == ["teams[0].nmae: unknown key; did you mean 'name'?"]


def test_load_checked_config_exits_2_with_the_report(tmp_path, capsys, monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert load_checked_config(EXAMPLE).teams[0].name == "planning"
    with pytest.raises(SystemExit) as exit_:
        load_checked_config(tmp_path / "nowhere.yml")
    assert exit_.value.code == 2
    assert "nowhere.yml: configuration is invalid (1 problem)\n  file not found" \
        in capsys.readouterr().err


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_each_preset_example_checks_ok_in_a_config(tmp_path, preset):
    (entry,) = yaml.safe_load(PRESETS[preset].example)
    data = _example()
    data["connectors"].insert(0, entry)
    env = {**ENV, **{var: "x" for var in [*entry.get("secrets", {}).values(),
                                          entry.get("webhook_secret_env") or "UNUSED"]}}
    result = _check(_write(tmp_path, data), env=env)
    assert result.exit_code == 0, result.output
