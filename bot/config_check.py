"""Every problem in an alignbot.yml in one pass, each as ``key.path: what is wrong``.

The models in ``bot.config`` say what each value may be. This module adds what values must
agree on (teams and regions named in routing exist, a schedule has one of ``every`` and
``cron``, a connector's settings fit its kind as the connector reads them) and checks those on
the raw YAML, so one mistake never hides another until it is fixed. ``load_checked_config``
is what a command runs first: the report, or the configuration.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
import types
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError

from bot.config import AlignbotConfig, ConfigError, SlackConfig, read_yaml, resolve_path

INVALID_CONFIG_EXIT = 2  # a command that cannot start on this configuration


def check(raw: dict[str, Any]) -> tuple[AlignbotConfig | None, list[str]]:
    """The configuration, or None and every problem with ``raw`` (the parsed YAML)."""
    config, problems = None, []
    try:
        config = AlignbotConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [_describe(e, AlignbotConfig) for e in exc.errors()]
    problems += _team_problems(raw) + _routing_problems(raw) + _connector_problems(raw)
    return (None if problems else config), _in_file_order(raw, problems)


def environment_problems(raw: dict[str, Any], environ: Mapping[str, str] | None = None, *,
                         slack: bool = True, secrets: bool = True,
                         database: bool = True) -> list[str]:
    """What the environment lacks for the file ``raw``, valid or not: the secrets it names
    and a database URL of a form alignbot can open (nothing is connected to)."""
    env = os.environ if environ is None else environ
    problems = []
    if secrets:
        named = []
        if slack:
            block = raw.get("slack") if isinstance(raw.get("slack"), dict) else {}
            named += [(f"slack.{key}", block.get(key, SlackConfig.model_fields[key].default))
                      for key in ("bot_token_env", "signing_secret_env")]
        for i, conn in _entries(raw, "connectors"):
            given = conn.get("secrets") if isinstance(conn.get("secrets"), dict) else {}
            named += [(f"connectors[{i}].secrets.{setting}", var) for setting, var in given.items()]
            named.append((f"connectors[{i}].webhook_secret_env", conn.get("webhook_secret_env")))
        problems += [f"{path}: environment variable {var} is not set" for path, var in named
                     if isinstance(var, str) and var and not env.get(var)]
    if database:
        problems += _database_problems(raw, env)
    return problems


def load_checked_config(path: Path | None = None, *, slack: bool = True, secrets: bool = True,
                        database: bool = True) -> AlignbotConfig:
    """The checked configuration, or the report on stderr and exit 2 (no traceback).

    ``slack``/``secrets`` require the environment variables the file names; ``database``
    requires a usable database URL (pass False when the command was given its own)."""
    source = resolve_path(path)
    try:
        raw = read_yaml(source)
    except ConfigError as exc:
        report_and_exit(exc.source, exc.problems)
    config, problems = check(raw)
    problems += environment_problems(raw, slack=slack, secrets=secrets, database=database)
    if config is None or problems:
        report_and_exit(str(source), problems)
    return config


def report_and_exit(source: str, problems: list[str]) -> NoReturn:
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    print(f"{source}: configuration is invalid ({count})", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    raise SystemExit(INVALID_CONFIG_EXIT)


def _in_file_order(raw: dict[str, Any], problems: list[str]) -> list[str]:
    """Each problem once, by top-level section as the file has them, then by list entry."""
    sections = list(raw)

    def where(problem: str) -> tuple[int, int]:
        path = problem.partition(": ")[0]
        top = re.match(r"[^.\[]*", path)[0]  # type: ignore[index]
        entry = re.search(r"\[(\d+)\]", path)
        return (sections.index(top) if top in sections else len(sections),
                int(entry[1]) if entry else -1)

    return sorted(dict.fromkeys(problems), key=where)


# --- what values must agree on, read from the raw YAML -------------------------------------------


def _entries(parent: Any, key: str) -> list[tuple[int, dict[str, Any]]]:
    """The mappings in ``parent[key]`` with their index (anything else the models report)."""
    value = parent.get(key) if isinstance(parent, dict) else None
    if not isinstance(value, list):
        return []
    return [(i, entry) for i, entry in enumerate(value) if isinstance(entry, dict)]


def _names(entries: list[tuple[int, dict[str, Any]]], what: str, path: str
           ) -> tuple[set[str], list[str]]:
    """The names given, and a problem for each name used twice."""
    first: dict[str, int] = {}
    problems = []
    for i, entry in entries:
        name = entry.get("name")
        if not isinstance(name, str):
            continue
        if name in first:
            problems.append(f"{path}[{i}].name: {what} {name!r} is already {path}[{first[name]}]")
        first.setdefault(name, i)
    return set(first), problems


def _unknown(path: str, value: Any, known: Iterable[str], what: str) -> list[str]:
    known = sorted(known)
    if not isinstance(value, str) or value in known:
        return []
    return [f"{path}: unknown {what} {value!r}{_suggestion(value, known, what)}"]


def _suggestion(value: str, known: list[str], what: str) -> str:
    """"; did you mean 'x'?" for a near miss, else what there is to choose from."""
    swapped = [k for k in known if sorted(k.lower()) == sorted(value.lower())]
    close = swapped or difflib.get_close_matches(value, known, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    if not known:
        return f" (no {what}s are defined)"
    return f" ({what}s: {', '.join(known)})" if len(known) <= 12 else ""


def _team_names(raw: dict[str, Any]) -> set[str]:
    return _names(_entries(raw, "teams"), "team", "teams")[0]


def _team_problems(raw: dict[str, Any]) -> list[str]:
    teams = _entries(raw, "teams")
    problems = _names(teams, "team", "teams")[1]
    for i, team in teams:
        if not team.get("usergroup_id") and not team.get("members"):
            problems.append(f"teams[{i}]: a team needs usergroup_id or members, or nobody "
                            "could approve")
    return problems


def _routing_problems(raw: dict[str, Any]) -> list[str]:
    routing = raw.get("routing")
    if not isinstance(routing, dict):
        return []
    teams = _team_names(raw)
    regions = routing.get("regions")
    regions = [r for r in regions if isinstance(r, str)] if isinstance(regions, dict) else []
    problems = _unknown("routing.default_team", routing.get("default_team"), teams, "team")
    for i, rule in _entries(routing, "rules"):
        path = f"routing.rules[{i}]"
        owners = rule.get("teams") if isinstance(rule.get("teams"), list) else []
        for j, team in enumerate(owners):
            problems += _unknown(f"{path}.teams[{j}]", team, teams, "team")
        approvals = rule.get("approvals")
        for team in approvals if isinstance(approvals, dict) else ():
            if team not in owners:
                problems.append(f"{path}.approvals.{team}: not one of this rule's teams "
                                f"({', '.join(map(str, owners)) or 'none given'})")
        match = rule.get("match")
        named = match.get("region") if isinstance(match, dict) else None
        for j, region in enumerate(named if isinstance(named, list) else ()):
            problems += _unknown(f"{path}.match.region[{j}]", region, regions, "region")
    return problems


def _connector_problems(raw: dict[str, Any]) -> list[str]:
    connectors = _entries(raw, "connectors")
    problems = _names(connectors, "connector", "connectors")[1] + _executor_problems(connectors)
    for i, conn in connectors:
        schedule = conn.get("schedule")
        if isinstance(schedule, dict) and ((schedule.get("every") is None)
                                           == (schedule.get("cron") is None)):
            problems.append(f"connectors[{i}].schedule: give exactly one of 'every' (e.g. 5m) "
                            "or 'cron' (e.g. '*/15 * * * *')")
        problems += _settings_problems(i, conn)
    return problems


def _executor_problems(connectors: list[tuple[int, dict[str, Any]]]) -> list[str]:
    """Approved actions go to the first connector of their system with ``executes`` (true by
    default): one that only reads would refuse every one of them."""
    from connectors.presets import PresetError, expand
    from connectors.registry import READ_ONLY_KINDS

    problems, seen = [], set()
    for i, conn in connectors:
        system, kind, settings = conn.get("system"), conn.get("kind"), conn.get("settings", {})
        if conn.get("executes", True) is not True or not isinstance(system, str) or system in seen:
            continue
        seen.add(system)
        try:
            reads_only = kind in READ_ONLY_KINDS or (
                kind == "rest" and isinstance(settings, dict)
                and expand(kind, settings).get("read_only") is True)
        except PresetError:
            continue  # reported with the settings
        if reads_only:
            why = "read_only: true" if kind == "rest" else f"a {kind} connector only reads"
            problems.append(
                f"connectors[{i}].executes: approved {system} actions would go to this connector "
                f"and be refused ({why}); set executes: false, or list the connector that "
                f"carries them out first")
    return problems


def _settings_problems(i: int, conn: dict[str, Any]) -> list[str]:
    """The connector's settings as its kind reads them at start, secrets counted as given."""
    from connectors.registry import KINDS, checkable_settings, settings_model

    kind, settings = conn.get("kind"), conn.get("settings", {})
    secrets = conn.get("secrets") if isinstance(conn.get("secrets"), dict) else {}
    if kind not in KINDS or not isinstance(settings, dict):
        return []  # the model names the kind or the settings' type
    secret_paths = [p for p in secrets if isinstance(p, str)]
    for dotted in secret_paths:
        node: Any = settings
        for depth, part in enumerate(dotted.split(".")[:-1]):
            node = node.get(part, {}) if isinstance(node, dict) else node
            if not isinstance(node, dict):
                parent = ".".join(dotted.split(".")[:depth + 1])
                return [f"connectors[{i}].settings.{parent}: expected a mapping, since "
                        f"secrets fill {dotted}"]
    values, problems = checkable_settings(kind, settings, secret_paths)
    if problems:
        return [f"connectors[{i}].{p}" for p in problems]
    try:
        model = settings_model(kind)
        model.model_validate(values)
    except ImportError as exc:  # a kind this build lacks
        return [f"connectors[{i}].kind: {kind} is not available in this build ({exc})"]
    except ValidationError as exc:
        return [_describe(e, model, ("connectors", i, "settings"), secret_paths)
                for e in exc.errors()]
    return []


def _database_problems(raw: dict[str, Any], env: Mapping[str, str]) -> list[str]:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from store.db import normalize_url, unusable

    fields = AlignbotConfig.model_fields
    var = raw.get("database_url_env", fields["database_url_env"].default)
    default = raw.get("database_url_default", fields["database_url_default"].default)
    given = env.get(var) if isinstance(var, str) else None
    url, where = (given, f"${var}") if given else (default, "database_url_default")
    if not isinstance(url, str):
        return []  # the model says what database_url_default should be
    try:
        make_url(normalize_url(url)).get_dialect().import_dbapi()
    except (ArgumentError, ValueError, ImportError) as exc:
        return [f"{where}: {unusable(url, exc)}"]
    return []


# --- pydantic's errors, at the user's key paths --------------------------------------------------


def _describe(error: Any, root: type[BaseModel], prefix: tuple[int | str, ...] = (),
              secret_paths: Sequence[str] = ()) -> str:
    """``key.path: message`` for one pydantic error under ``root``, with a "did you mean" for
    an unknown key or value; a missing setting that is a secret says where secrets go."""
    path, parent, here, last = list(prefix), [root], [root], None
    for part in error["loc"]:
        if isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue  # pydantic's validator frames, not keys
        parent, last = here, part
        here, is_key = _step(here, part)
        if is_key:
            path.append(part)
    message = error["msg"].removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    kind = error["type"]
    if kind == "extra_forbidden" and isinstance(last, str):
        message = "unknown key" + _suggestion(last, _keys(parent), "key")
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        message = f"expected a mapping (key: value lines), not {_shown(error.get('input'))}"
    elif kind == "list_type":
        message = f"expected a list ([a, b] or - lines), not {_shown(error.get('input'))}"
    elif kind in ("literal_error", "enum") and isinstance(error.get("input"), str):
        allowed = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
        close = difflib.get_close_matches(error["input"], allowed, n=1, cutoff=0.6)
        message += f"; did you mean {close[0]!r}?" if close else ""
    dotted = ".".join(str(p) for p in path[len(prefix):])
    if prefix and dotted in secret_paths:  # filled from the environment: name the secrets key
        path = [*prefix[:-1], "secrets", dotted]
    elif kind == "missing" and SecretStr in here and prefix:
        message = (f"required; it is a secret, so name the environment variable that holds it "
                   f"under {_join(prefix[:-1])}.secrets (e.g. {dotted}: MY_SECRET_ENV)")
    return f"{_join(path)}: {message}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _join(path: Sequence[int | str]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _flat(tp: Any) -> list[Any]:
    """The concrete types behind ``Annotated``, ``Optional`` and unions."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _flat(get_args(tp)[0])
    if origin in (Union, types.UnionType):
        return [t for arg in get_args(tp) for t in _flat(arg)]
    return [tp]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _step(candidates: list[Any], part: int | str) -> tuple[list[Any], bool]:
    """The types at ``part`` below ``candidates``; False when ``part`` is no key of the user's
    (a discriminated union's tag, which pydantic puts in the path)."""
    found: list[Any] = []
    for tp in candidates:
        origin, args = get_origin(tp), get_args(tp)
        if _is_model(tp) and isinstance(part, str):
            field = next((f for name, f in tp.model_fields.items()
                          if part in (name, f.alias)), None)
            found += _flat(field.annotation) if field else []
        elif origin in (list, tuple, set, frozenset) and isinstance(part, int) and args:
            found += _flat(args[0])
        elif origin is dict and len(args) == 2:
            found += _flat(args[1])
    if not found and isinstance(part, str):
        tagged = [tp for tp in candidates if _is_model(tp) and any(
            get_origin(f.annotation) is Literal and part in get_args(f.annotation)
            for f in tp.model_fields.values())]
        if tagged:
            return tagged, False
    return found, True


def _keys(candidates: list[Any]) -> list[str]:
    return sorted({f.alias or name for tp in candidates if _is_model(tp)
                   for name, f in tp.model_fields.items()})
