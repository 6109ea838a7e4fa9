"""Build a connector from its configuration: kind, settings and secrets resolved by the caller.

Secrets arrive as values keyed by a dotted path into the settings (``auth.token``), so the
YAML names only environment variables and the values never touch a file. Settings may name a
preset (``connectors.presets``), whose settings lie under the connector's own; ``push`` (how
the system's webhook bodies are read) is taken out before the kind's settings model sees them.
``validate_settings`` checks all of it without building anything (``alignbot config check``
reads ``checkable_settings`` and the kind's model itself, to say more about each problem).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

from connectors.base import Connector
from connectors.presets import PresetError, PushSettings, expand, missing_needs

KINDS = ("rest", "csv", "epcis", "x12", "edifact")
READ_ONLY_KINDS = ("csv", "epcis", "edifact")  # their execute refuses every action
# kind → (module, settings model): imported only when a connector of that kind is used
_MODELS = {"rest": ("connectors.rest", "RestSettings"),
           "csv": ("connectors.csv_drop", "CsvDropSettings"),
           "epcis": ("connectors.epcis", "EpcisSettings"),
           "x12": ("connectors.x12", "X12Settings"),
           "edifact": ("connectors.edifact", "EdifactSettings")}


class UnknownConnectorKind(ValueError):
    pass


def with_secrets(settings: dict[str, Any], secrets: dict[str, str]) -> dict[str, Any]:
    merged = copy.deepcopy(settings)
    for dotted, value in secrets.items():
        node = merged
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return merged


def _default_timeout(kind: str, values: dict[str, Any], timeout: float) -> None:
    """The connector's ``timeout`` from config, unless its settings name their own (each
    connector builds its client from its settings)."""
    if kind == "rest":
        values.setdefault("retry", {}).setdefault("timeout_seconds", timeout)
    elif kind == "epcis":
        values.setdefault("timeout_s", timeout)
    elif kind == "csv":
        values.setdefault("timeout_seconds", timeout)


def settings_model(kind: str) -> type[BaseModel]:
    if kind not in _MODELS:
        raise UnknownConnectorKind(f"unknown kind {kind!r} (use {', '.join(KINDS)})")
    module, model = _MODELS[kind]
    return getattr(__import__(module, fromlist=[model]), model)


def resolve_settings(kind: str, settings: dict[str, Any],
                     secrets: dict[str, str]) -> tuple[dict[str, Any], PushSettings | None]:
    """The values for the kind's settings model (preset under the connector's own, secrets
    filled in) and the connector's ``push``. Raises PresetError or ValidationError."""
    values = with_secrets(expand(kind, settings), secrets)
    push = values.pop("push", None)
    return values, (PushSettings.model_validate(push) if push is not None else None)


def checkable_settings(kind: str, settings: dict[str, Any],
                       secret_settings: list[str] | tuple[str, ...] = ()
                       ) -> tuple[dict[str, Any], list[str]]:
    """The values the kind's settings model reads, as at start (preset applied, each setting
    named in ``secret_settings`` filled with a stand-in), and the problems found before that
    model: the preset, ``push``, what the preset needs (``settings.path: message`` each)."""
    try:
        problems = [f"settings.{p}" for p in missing_needs(settings, secret_settings)]
        values, _ = resolve_settings(kind, settings, dict.fromkeys(secret_settings, "secret"))
    except PresetError as exc:
        return {}, [f"settings.preset: {exc}"]
    except ValidationError as exc:
        return {}, [_problem("settings.push", e) for e in exc.errors()]
    _default_timeout(kind, values, 10.0)
    return values, problems


def validate_settings(kind: str, settings: dict[str, Any],
                      secret_settings: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Every problem with a connector's settings, ``settings.path: message`` each, checked
    against the kind's settings model with its preset applied; settings named in
    ``secret_settings`` (filled from the environment at start) count as given."""
    if kind not in _MODELS:
        return [f"kind: unknown kind {kind!r} (use {', '.join(KINDS)})"]
    values, problems = checkable_settings(kind, settings, secret_settings)
    if problems:
        return problems  # what the preset needs says it better than the model's errors would
    try:
        settings_model(kind).model_validate(values)
    except ValidationError as exc:
        problems += [_problem("settings", e) for e in exc.errors()]
    except ImportError as exc:  # a kind this build lacks (edifact's module, say)
        problems.append(f"kind: {kind} is not available in this build ({exc})")
    return problems


def _problem(prefix: str, error: Any) -> str:
    where = ".".join(str(p) for p in error["loc"] if not str(p).startswith("function-"))
    message = error["msg"].removeprefix("Value error, ")
    return f"{prefix}.{where}: {message}" if where else f"{prefix}: {message}"


def build_connector(name: str, kind: str, settings: dict[str, Any], secrets: dict[str, str],
                    *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None,
                    sleep: Callable[[float], None] = time.sleep,
                    base_path: Path | None = None) -> Connector:
    """One connector ready to read and execute. HTTP kinds send through ``transport`` (default:
    the network) with bounded retries that wait with ``sleep``, each call within ``timeout``."""
    try:
        values, _push = resolve_settings(kind, settings, secrets)
    except PresetError as exc:
        raise ValueError(f"connector {name}: settings.preset: {exc}") from None
    _default_timeout(kind, values, timeout)
    http = {"transport": transport, "sleep": sleep}
    if kind == "rest":
        from connectors.rest import RestConnector, RestSettings

        return RestConnector(name, RestSettings.model_validate(values), **http)
    if kind == "csv":
        from connectors.csv_drop import CsvDropConnector, CsvDropSettings

        return CsvDropConnector(name, CsvDropSettings.model_validate(values),
                                base_path=base_path, **http)
    if kind == "epcis":
        from connectors.epcis import EpcisConnector, EpcisSettings

        return EpcisConnector(name, EpcisSettings.model_validate(values), **http)
    if kind == "x12":
        from connectors.x12 import X12Connector, X12Settings

        return X12Connector(name, X12Settings.model_validate(values),
                            base_path=base_path or Path("."))
    if kind == "edifact":
        from connectors.edifact import EdifactConnector, EdifactSettings

        return EdifactConnector(name, EdifactSettings.model_validate(values),
                                base_path=base_path or Path("."))
    raise UnknownConnectorKind(f"connector {name}: unknown kind {kind!r} "
                               "(use rest, csv, epcis, x12 or edifact)")
