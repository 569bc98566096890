"""Errors a user can act on: each message names the file, line or config key at fault."""


class RankbenchError(Exception):
    """Base class: evaluate.py prints these as one clear message, without a traceback."""


class DataError(RankbenchError):
    """Benchmark data is malformed (bad JSON line, missing id, duplicate id, empty corpus)."""


class DatasetUnavailable(RankbenchError):
    """No source for a dataset could be found or reached."""


class ConfigError(RankbenchError):
    """A config value is not what the component expects."""
