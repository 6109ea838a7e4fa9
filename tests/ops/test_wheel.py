"""The package as a user installs it: the wheel built and installed by the Dockerfile's own
commands into a fresh virtualenv, then the first commands a new user runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.detectors.test_cli import full
from tests.ops._dockerfile import ROOT, exec_form, instructions, shell_command

EXAMPLE = ROOT / "alignbot.example.yml"
SECRETS = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "TMS_WEBHOOK_SECRET": "w"}
DATA_FILES = {"connectors/x12_codes.csv", "connectors/edifact_codes.csv", "sandbox/slack/ui/index.html",
              "store/migrations/script.py.mako", "store/inbox_migrations/script.py.mako"}
DEV_ONLY = {"pytest", "ruff", "playwright", "hypothesis", "duckdb", "pyarrow", "jsonschema"}


def _uv() -> str:
    found = shutil.which("uv") or (ROOT / ".tools/bin/uv")  # `make` installs uv in .tools
    assert Path(found).exists(), "uv not found: run `make test` (it installs uv in .tools/)"
    return str(found)


def _env(**extra: str) -> dict[str, str]:
    """The environment of a fresh shell: this checkout's venv and config play no part."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "DATABASE_URL", "ALIGNBOT_CONFIG")}
    env["PATH"] = f"{Path(_uv()).parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


def _sh(command: str, cwd: Path) -> None:
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"


@pytest.mark.timeout(900)
def test_the_wheel_installs_as_the_dockerfile_does_and_answers_a_new_users_commands(tmp_path):
    steps = instructions()
    runs = [shell_command(i) for i in steps if i.name == "RUN"]
    (build,) = [r for r in runs if "uv build" in r]
    (install,) = [r for r in runs if "uv pip install" in r]
    dist, venv, home = tmp_path / "dist", tmp_path / "venv", tmp_path / "home"
    home.mkdir()
    _sh(build.replace("/dist", str(dist)), cwd=ROOT)
    (wheel,) = dist.glob("alignbot-*.whl")
    assert DATA_FILES <= set(zipfile.ZipFile(wheel).namelist())
    _sh(install.replace("/dist", str(dist)).replace("/opt/alignbot", str(venv)), cwd=home)

    def alignbot(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(venv / "bin/alignbot"), *args], cwd=home, env=_env(**env),
                              capture_output=True, text=True, timeout=120)

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert alignbot("--version").stdout == f"alignbot {version}\n"

    checked = alignbot("config", "check", "--config", str(EXAMPLE), **SECRETS)
    assert checked.returncode == 0, checked.stderr
    assert f"{EXAMPLE}: ok" in checked.stdout

    url = f"sqlite:///{home / 'alignbot.db'}"
    upgraded = alignbot("db", "upgrade", "--database-url", url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.startswith("database at revision ")
    assert alignbot("drift", "--database-url", url).stdout.startswith("No open drift.")

    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    detected = alignbot("detect", "--snapshot", str(full(snapshot)), "--at", "2026-11-26T08:00:00Z")
    assert detected.returncode == 0, detected.stderr
    assert "Drifts (3)" in detected.stdout and "Recommendations (" in detected.stdout

    # The image's start command is this installed command's.
    (cmd,) = [exec_form(i) for i in steps if i.name == "CMD"]
    assert cmd[0] == "alignbot"
    assert alignbot(*cmd[1:], "--help").returncode == 0

    demo = alignbot("demo", "--socket-mode", "--for", "1")
    assert demo.returncode == 1
    assert "pip install 'alignbot[demo]'" in demo.stderr

    # What a user gets is the bot: no test or lint tools, no demo extra unless asked for.
    listed = subprocess.run([_uv(), "pip", "list", "--python", str(venv / "bin/python")],
                            capture_output=True, text=True, timeout=60, check=True).stdout
    installed = {line.split()[0].lower() for line in listed.splitlines()[2:]}
    assert "alignbot" in installed
    assert not installed & (DEV_ONLY | {"wsproto", "opentelemetry-sdk", "pydantic-settings"})
