"""compose.yaml and the Dockerfile, checked without a container registry or a Docker daemon:
the compose file against the Compose Specification's schema, and every command either runs
against the `alignbot` command this checkout builds."""

from __future__ import annotations

import copy
import json
import re

import jsonschema
import yaml
from typer.testing import CliRunner

from bot.cli import app
from tests.ops._dockerfile import ROOT, exec_form, instructions, shell_command

COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SCHEMA = json.loads((ROOT / "tests/ops/fixtures/compose-spec.json").read_text())
HEALTH_PORT = re.compile(r"127\.0\.0\.1:(\d+)/healthz")


def _problems(document: dict) -> list[str]:
    # The schema names draft 07 by a URL jsonschema does not know ("…/draft-07/schema", no "#").
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in validator.iter_errors(document)]


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_compose_file_follows_the_compose_specification():
    assert _problems(COMPOSE) == []
    typo = copy.deepcopy(COMPOSE)  # the schema refuses what Compose would: it is not vacuous
    typo["services"]["worker"]["depend_on"] = typo["services"]["worker"].pop("depends_on")
    assert any("depend_on" in problem for problem in _problems(typo))


def test_compose_migrates_once_then_starts_the_ingress_and_two_workers_on_postgres():
    services = COMPOSE["services"]
    assert services["postgres"]["healthcheck"]["test"]
    assert services["migrate"]["command"] == ["alignbot", "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("ingress", "worker"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"}
        assert services[name]["environment"]["DATABASE_URL"].startswith("postgresql://")
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["ingress"]["command"][:2] == ["alignbot", "ingress"]
    assert services["worker"]["command"][:2] == ["alignbot", "worker"]
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= set(services), name
        for config in service.get("configs", []):
            assert config["source"] in COMPOSE["configs"], name


def test_every_command_in_compose_and_the_dockerfile_is_one_alignbot_accepts():
    commands = [s["command"] for s in COMPOSE["services"].values() if "command" in s]
    commands += [exec_form(i) for i in instructions() if i.name == "CMD"]
    for command in commands:
        if command[0] != "alignbot":
            continue
        # --help after the options: an unknown command or option is refused before help shows
        result = CliRunner().invoke(app, [*command[1:], "--help"])
        assert result.exit_code == 0, (command, result.output)


def test_each_health_check_asks_its_own_process_on_its_own_port():
    services = COMPOSE["services"]
    ingress = services["ingress"]
    assert HEALTH_PORT.findall(" ".join(ingress["healthcheck"]["test"])) == [
        _option(ingress["command"], "--port")]
    # The workers use the image's own check: the worker's port (also `alignbot run`'s worker).
    assert "healthcheck" not in services["worker"]
    (check,) = [exec_form(i) for i in instructions() if i.name == "HEALTHCHECK"]
    assert check[:2] == ["python", "-c"]
    compile(check[2], "HEALTHCHECK", "exec")
    assert HEALTH_PORT.findall(check[2]) == [_option(services["worker"]["command"], "--port")]
    assert [p.split(":")[-1] for p in ingress["ports"]] == [_option(ingress["command"], "--port")]


def test_the_image_installs_the_wheel_built_in_its_first_stage_and_runs_unprivileged():
    steps = instructions()
    final = max(i.stage for i in steps)
    assert final >= 1
    (build,) = [i for i in steps if i.name == "RUN" and "uv build --wheel" in i.args]
    (install,) = [i for i in steps if i.name == "RUN" and "uv pip install" in i.args]
    assert build.stage < final and install.stage == final
    assert "/dist/alignbot-*.whl" in shell_command(install)
    assert "--constraint /dist/constraints.txt" in shell_command(install)  # the locked versions
    users = [i.args for i in steps if i.name == "USER" and i.stage == final]
    assert users and users[-1] not in ("root", "0")
    config_target = COMPOSE["services"]["worker"]["configs"][0]["target"]
    (env,) = [i.args for i in steps if i.name == "ENV" and i.stage == final]
    assert f"ALIGNBOT_CONFIG={config_target}" in env
