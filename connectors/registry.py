"""Build a connector from its configuration: kind, settings and secrets resolved by the caller.

Secrets arrive as values keyed by a dotted path into the settings (``auth.token``), so the
YAML names only environment variables and the values never touch a file.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import httpx

from connectors.base import Connector


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
    """The connector's ``timeout`` from config, unless its settings name their own.

    The connectors pass a timeout on every request (which overrides the client's), so the
    configured one has to reach their settings, not just the client.
    """
    if kind == "rest":
        values.setdefault("retry", {}).setdefault("timeout_seconds", timeout)
    elif kind == "epcis":
        values.setdefault("timeout_s", timeout)
    elif kind == "csv":
        values.setdefault("timeout_seconds", timeout)


def build_connector(name: str, kind: str, settings: dict[str, Any], secrets: dict[str, str],
                    *, timeout: float = 10.0, client: httpx.Client | None = None,
                    base_path: Path | None = None) -> Connector:
    """One connector ready to read and execute; HTTP kinds get a client with ``timeout``."""
    values = with_secrets(settings, secrets)
    _default_timeout(kind, values, timeout)
    http = client or httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False)
    if kind == "rest":
        from connectors.rest import RestConnector, RestSettings

        return RestConnector(name, RestSettings.model_validate(values), http)
    if kind == "csv":
        from connectors.csv_drop import CsvDropConnector, CsvDropSettings

        return CsvDropConnector(name, CsvDropSettings.model_validate(values),
                                base_path=base_path, client=http)
    if kind == "epcis":
        from connectors.epcis import EpcisConnector, EpcisSettings

        return EpcisConnector(name, EpcisSettings.model_validate(values), http)
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
