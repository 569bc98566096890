"""Training recipes (``--recipe conf/train/*.yaml``): flags kept in a file, the command line still wins."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rankbench.rerankers import train as ce_train
from rankbench.retrievers import train_generative as gen_train
from tests.conftest import PROJECT

TRAINERS = pytest.mark.parametrize("parse_args", [ce_train.parse_args, gen_train.parse_args], ids=["ce", "gen"])


def recipe(tmp_path: Path, text: str) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("parse_args", "name", "command"),
    [
        (
            ce_train.parse_args,
            "ce-minilm-scifact",
            "--out runs/models/ce-minilm-scifact --max-length 256 --negatives 7 --negatives-depth 50 "
            "--batch-queries 4 --epochs 4 --lr 5e-5 --dev-queries 60 --dev-depth 20 --dtype float32 "
            "--checkpoint-every 25 --dev-every 150",
        ),
        (
            gen_train.parse_args,
            "gen-minilm-scifact",
            "--out runs/models/gen-minilm-scifact --dataset scifact-train --docids semantic --k 10 --max-length 64 "
            "--batch-size 32 --bucket 100 --query-repeats 3 --epochs 5.5 --dtype float32 --checkpoint-every 200 "
            "--eval-every 500 --eval-size 100",
        ),
    ],
    ids=["ce", "gen"],
)
def test_shipped_recipe_equals_the_command_line_it_replaced(parse_args: Callable, name: str, command: str):
    """The Makefile's former flags, typed by argparse, against the recipe: the same training settings, less
    the wall-clock budget (a recipe is work, not time) and with the dtype pinned."""
    cfg = parse_args(["--recipe", str(PROJECT / "conf" / "train" / f"{name}.yaml")])
    assert cfg.max_minutes is None and cfg.dtype == "float32"
    assert cfg == parse_args(command.split())


def test_recipe_values_are_typed_as_flags_and_the_command_line_wins(tmp_path: Path):
    path = recipe(tmp_path, "out: runs/models/x\nmax-length: 128\nepochs: 4\nlr: 5e-5\noverrides: [dataset.path=/d]\n")
    cfg = ce_train.parse_args(["--recipe", path, "--max-length", "64"])
    assert cfg.max_length == 64 and cfg.out == "runs/models/x" and cfg.overrides == ["dataset.path=/d"]
    assert cfg.epochs == 4.0 and isinstance(cfg.epochs, float) and cfg.lr == 5e-5  # YAML reads 5e-5 as text
    assert ce_train.parse_args(["--recipe", path, "--out", "elsewhere"]).out == "elsewhere"


def test_recipe_booleans_and_nulls_reach_the_generative_trainer(tmp_path: Path):
    path = recipe(tmp_path, "out: m\nposition-aware: false\ntrain-queries: null\nmax-leaf: 12\n")
    cfg = gen_train.parse_args(["--recipe", path])
    assert cfg.position_aware is False and cfg.train_queries is None and cfg.max_leaf == 12


@TRAINERS
def test_unknown_key_fails_naming_the_file_and_the_key(parse_args: Callable, tmp_path: Path, capsys):
    path = recipe(tmp_path, "out: m\nmax_lenght: 64\n")
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--recipe", path])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert path in error and "unknown key 'max_lenght'" in error


@TRAINERS
def test_a_value_the_flag_rejects_names_the_file_and_the_key(parse_args: Callable, tmp_path: Path, capsys):
    path = recipe(tmp_path, "out: m\nmax-length: long\n")
    with pytest.raises(SystemExit):
        parse_args(["--recipe", path])
    error = capsys.readouterr().err
    assert path in error and "max-length: 'long' is not a valid value" in error


def test_out_is_still_required_without_a_recipe_giving_it(tmp_path: Path, capsys):
    with pytest.raises(SystemExit):
        ce_train.parse_args(["--recipe", recipe(tmp_path, "epochs: 1\n")])
    assert "--out" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("overlay", "command"),
    [
        (
            "ce_minilm_scifact",
            ["reranker=cross_encoder", "reranker.model=runs/models/ce-minilm-scifact", "reranker.max_length=256"],
        ),
        ("gen_minilm_scifact", ["retriever=generative", "retriever.model=runs/models/gen-minilm-scifact"]),
    ],
)
def test_evaluation_overlay_equals_the_command_line_it_replaced(make_cfg, overlay: str, command: list[str]):
    """Same composed config, so the Makefile's runs keep their config hashes."""
    assert make_cfg(f"experiment={overlay}") == make_cfg(*command)
