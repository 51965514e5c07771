"""Errors the harness reports as one clear line instead of a traceback."""


class ConfigError(ValueError):
    """A setting is invalid: the message names the key, the bad value and what is allowed."""
