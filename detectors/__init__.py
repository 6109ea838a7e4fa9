"""Detectors: canonical snapshots in, drifts and recommendations out. Pure, no I/O, no clock.

Public names load lazily: importing one detector module does not load them all.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "detect": "detectors.pipeline",
    "DetectionResult": "detectors.pipeline",
    "DetectorSettings": "detectors.settings",
    "Snapshot": "detectors.snapshot",
    "snapshot_from_records": "detectors.snapshot",
}
__all__ = ["DetectionResult", "DetectorSettings", "Snapshot", "detect", "snapshot_from_records"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'detectors' has no attribute {name!r}")
