"""What differs between runs that share a system name: the dotted config keys whose values differ.

Two BM25 runs on one dataset used to read "bm25 (af3a9e)" and "bm25 (80d495)"; the hashes say that
they differ, not how. Each run folder keeps its resolved config (config.yaml, harness/rundir.py), so
the difference can be named: ``retriever.remove_query=false``. Keys that never change results (the
harness's paths, a component's threads or batch size: ``stages.strip_runtime``) are left out, so
the keys shown are the ones the config hashes differ by.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from rankbench.harness.errors import DataError
from rankbench.harness.stages import HARNESS_KEYS, strip_runtime

Key = TypeVar("Key", bound=Hashable)
UNSET = "unset"  # the value shown for a key one config has and another lacks


def load_config(path: Path) -> dict[str, Any] | None:
    """A run folder's config.yaml as plain data; None when the run has none (an older or imported run)."""
    if not path.is_file():
        return None
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise DataError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(loaded, dict):
        raise DataError(f"{path}: expected a mapping of config keys, got {type(loaded).__name__}")
    return loaded


def result_keys(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` without the keys that never change results; a ``_target_`` whose class no longer imports
    loses only the harness's keys, so an old run folder still compares."""
    try:
        return strip_runtime(dict(config))
    except (ImportError, AttributeError, ValueError):
        return _without_harness_keys(dict(config))


def _without_harness_keys(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {k: _without_harness_keys(v) for k, v in node.items() if k not in HARNESS_KEYS}
    if isinstance(node, list):
        return [_without_harness_keys(v) for v in node]
    return node


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> leaf value; a list is one leaf, since its items have no names to show."""
    if isinstance(node, Mapping) and node:
        flat: dict[str, Any] = {}
        for key, value in node.items():
            flat |= flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return flat
    return {prefix: node}


def show(value: Any) -> str:
    """As one writes it in a Hydra override: ``false``, ``null``, ``[nDCG@10,AP]``, ``0.9``."""
    if value is UNSET:
        return UNSET
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ",".join(show(v) for v in value) + "]"
    return str(value)


def differences(configs: Mapping[Key, Mapping[str, Any]]) -> dict[Key, list[str]]:
    """For each config, ``key=value`` for every dotted key whose value is not the same in all of them
    (sorted by key); empty lists when they agree or when there is only one."""
    flat = {name: flatten(result_keys(config)) for name, config in configs.items()}
    keys = sorted({key for values in flat.values() for key in values})
    differing = [key for key in keys if len({show(values.get(key, UNSET)) for values in flat.values()}) > 1]
    return {name: [f"{key}={show(values.get(key, UNSET))}" for key in differing] for name, values in flat.items()}
