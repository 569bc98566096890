"""``--recipe FILE.yaml`` for the training commands: a long command line kept as a file.

A recipe's keys are the command's flag names without the dashes (``max-length: 256``); its values
become the flags' defaults, so a flag given on the command line still wins. The recipes that
produced the models in the README live in ``conf/train/``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml


def parse_with_recipe(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args(argv)`` over the defaults of the ``--recipe`` file named in ``argv``, if any."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--recipe", type=Path)
    recipe = pre.parse_known_args(argv)[0].recipe
    parser.add_argument("--recipe", type=Path, help="YAML file of flag: value (flags given here override it)")
    if recipe is not None:
        _apply(parser, recipe)
    args = parser.parse_args(argv)
    del args.recipe
    return args


def _apply(parser: argparse.ArgumentParser, path: Path) -> None:
    """Set each recipe value as its flag's default (converted as the flag converts text); a recipe
    key that is no flag is an error naming the file and the key, so a typo never passes silently."""
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        parser.error(f"--recipe {path}: {e}")
    if not isinstance(values, dict):
        parser.error(f"--recipe {path}: expected a mapping of flag: value, got {type(values).__name__}")
    flags = {a.option_strings[-1].removeprefix("--"): a for a in parser._actions if a.option_strings}
    for key, value in values.items():
        action = flags.get(str(key))
        if action is None or action.dest in ("help", "recipe"):
            parser.error(f"--recipe {path}: unknown key {key!r} (keys are flag names, e.g. max-length)")
        try:
            action.default = _converted(action, value)
        except (TypeError, ValueError, KeyError) as e:
            parser.error(f"--recipe {path}: {key}: {value!r} is not a valid value ({e})")
        action.required = False


def _converted(action: argparse.Action, value: Any) -> Any:
    """The value as the flag would parse it from text (YAML reads 5e-5 as a string, 4 as an int)."""
    if value is None or action.type is None:
        return value
    if isinstance(value, list):
        return [action.type(str(v)) for v in value]
    return action.type(str(value))
