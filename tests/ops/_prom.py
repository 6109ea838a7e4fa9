"""Read a Prometheus exposition back the way Prometheus would, for assertions."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def parse(text: bytes | str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """{sample name: {sorted label pairs: value}}; fails if the text is not valid exposition."""
    if isinstance(text, bytes):
        text = text.decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples[name][tuple(sorted(labels.items()))]


def by_label(samples, name: str, label: str) -> dict[str, float]:
    return {dict(k)[label]: v for k, v in samples.get(name, {}).items()}
