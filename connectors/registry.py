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


def build_connector(name: str, kind: str, settings: dict[str, Any], secrets: dict[str, str],
                    *, timeout: float = 10.0, client: httpx.Client | None = None,
                    base_path: Path | None = None) -> Connector:
    """One connector ready to read and execute; HTTP kinds get a client with ``timeout``."""
    values = with_secrets(settings, secrets)
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
    raise UnknownConnectorKind(f"connector {name}: unknown kind {kind!r} "
                               "(use rest, csv, epcis or x12)")
