"""Errors the harness reports as one clear line instead of a traceback."""


class ConfigError(ValueError):
    """A setting is invalid: the message names the key, the bad value and what is allowed."""


def one_line(error: BaseException, limit: int = 400) -> str:
    """``Type: message`` of an exception raised by a library, on one line (whitespace collapsed,
    cut at ``limit`` characters), to quote inside a :class:`ConfigError`."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
