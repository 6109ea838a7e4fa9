"""The repository's Dockerfile read as instructions, so tests can run and check what it runs."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    stage: int  # 0 for the first FROM's stage, 1 for the next, ...
    name: str  # RUN, CMD, USER, ...
    args: str  # the rest of the line, continuations joined


def instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    joined = re.sub(r"\\\n", " ", path.read_text())
    found: list[Instruction] = []
    stage = -1
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, args = line.partition(" ")
        name = name.upper()
        stage += name == "FROM"
        found.append(Instruction(stage, name, " ".join(args.split())))
    return found


def shell_command(instruction: Instruction) -> str:
    """A RUN instruction's shell command, without its ``--mount=`` (and other ``--``) flags."""
    assert instruction.name == "RUN", instruction
    words = instruction.args.split(" ")
    while words and words[0].startswith("--"):
        words.pop(0)
    return " ".join(words)


def exec_form(instruction: Instruction) -> list[str]:
    """CMD/ENTRYPOINT (or HEALTHCHECK's CMD) in exec form, as the list Docker runs."""
    args = instruction.args
    if instruction.name == "HEALTHCHECK":
        args = args[args.index("CMD ") + len("CMD "):]
    value = json.loads(args)
    assert isinstance(value, list), f"{instruction.name} is not in exec form: {args}"
    return value
