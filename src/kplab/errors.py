"""User-facing errors: the CLI prints their message and exits 2, with no traceback."""


class KplabError(Exception):
    """A problem the user can fix (bad file, bad option); the message names the file, row or field."""


class DataError(KplabError):
    """Input data that cannot be read as promised."""


class ConfigError(KplabError):
    """A config file or `--set` override that does not fit the config's fields."""


class CheckpointError(KplabError):
    """A model directory that is missing, incomplete or inconsistent."""
