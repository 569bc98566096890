"""rankbench's Hydra configs outside of ``evaluate.py``: the packaged ``conf/`` and one way to compose it.

Notebooks, trainers, the Python API and tests all compose the same files the command line does, so a
pipeline built in Python and one built from overrides resolve to the same config and the same hashes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig

import rankbench.conf


def conf_dir() -> Path:
    """The config folder: the checkout's ``conf/``, or its copy installed as package data."""
    return Path(next(iter(rankbench.conf.__path__)))


def compose(overrides: Sequence[str] = (), return_hydra_config: bool = False) -> DictConfig:
    """``conf/config.yaml`` with command-line style overrides, e.g. ``["retriever=dense", "max_queries=5"]``."""
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides), return_hydra_config=return_hydra_config)
