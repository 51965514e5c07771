"""Hydra's compose errors as the harness's one line: ``error: KEY=VALUE: what is wrong; allowed: ...``.

Hydra prints an unknown option, an unknown key or a value of the wrong type as several lines
(with the config search path) and exits 1; every command of ``freezeout`` says it in one line
naming the key, the value and what is allowed, and exits 2. ``HYDRA_FULL_ERROR=1`` keeps Hydra's
own report with the traceback.
"""
from __future__ import annotations

import contextlib
import difflib
import os
import re
import sys
from typing import Iterator, Sequence

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

#: OmegaConf's type names in "could not be converted to Float" -> what a user writes.
_TYPES = {"Float": "a number (e.g. 0.5)", "Integer": "an integer", "Boolean": "true or false",
          "String": "a string", "Path": "a path"}
#: Hydra's own report, kept whole where this environment variable is set.
FULL_ERROR_ENV = "HYDRA_FULL_ERROR"


def compose_error_line(error: BaseException, overrides: Sequence[str] = ()) -> str | None:
    """``error:`` and one line for a Hydra/OmegaConf compose error (unknown option, unknown key,
    wrong type, unparsable override); None for any other exception. ``overrides`` (the command
    line's) give the value of an unknown key, which Hydra's message leaves out."""
    if isinstance(error, MissingConfigException) and error.options is not None:
        return _unknown_option(error)
    cause = error.__cause__
    if isinstance(error, ConfigCompositionException) and isinstance(cause, OmegaConfBaseException):
        override = _override_in(str(error))
        if isinstance(cause, ConfigKeyError) or "not in" in str(cause.msg if hasattr(cause, "msg") else cause):
            given = next((o for o in overrides if override and o.split("=", 1)[0] == override), override)
            return _unknown_key(given, cause)
        if isinstance(cause, ValidationError):
            return _wrong_type(override, cause)
        return f"error: {override or cause.full_key}: {_first_line(cause.msg)}"
    if isinstance(error, OverrideParseException):
        return (f"error: cannot read the override: {_first_line(str(error))}; write KEY=VALUE (a sweep: KEY=A,B with -m),"
                f" GROUP=OPTION or +NEW_KEY=VALUE")
    if isinstance(error, (ConfigCompositionException, MissingConfigException)):
        return f"error: {' '.join(_first_line(str(error)).split())}"
    return None


def check_composes(args: Sequence[str]) -> str | None:
    """The ``error:`` line for the first of ``args``' plain overrides (not flags, not ``bench.*``,
    not Hydra's own, one value each: a sweep's lists are left to the command) that the shipped
    config cannot take; None when they compose. For commands that compose in their own way
    (plan, bench), before they start."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from ..config import compose_config

    plain = [a for a in args if "=" in a and not a.startswith(("-", "bench.", "hydra", "+hydra", "++hydra", "~hydra"))]
    try:
        parsed = OverridesParser.create().parse_overrides(plain)
    except OverrideParseException as e:
        return compose_error_line(e, plain)
    single = [a for a, o in zip(plain, parsed) if not o.is_sweep_override()]
    try:
        compose_config(*single)
    except Exception as e:  # noqa: BLE001 - anything else is the command's to report
        return compose_error_line(e, single)
    return None


def _first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def _override_in(message: str) -> str | None:
    """``t_0=fast`` in "Error merging override t_0=fast" / ``optimizer.lrr`` in "Could not override 'optimizer.lrr'"."""
    found = re.search(r"override '?([^'\s]+)'?", message)
    return found.group(1) if found else None


def _unknown_option(error: MissingConfigException) -> str:
    group, _, option = str(error.missing_cfg_file).rpartition("/")
    if not group:  # the primary config itself (config_name) is missing
        return f"error: no config {option!r}: {_first_line(str(error))}"
    near = difflib.get_close_matches(option, error.options, n=1)
    hint = f" (did you mean {group}={near[0]}?)" if near else ""
    return (f"error: {group}={option}: no such option in group {group!r}; allowed: "
            f"{', '.join(error.options)}{hint}")


def _unknown_key(override: str | None, cause: OmegaConfBaseException) -> str:
    key = str(cause.full_key or override)
    parent = cause.parent_node
    keys = [str(k) for k in parent.keys()] if parent is not None and hasattr(parent, "keys") else []
    keys = [k for k in keys if k != "hydra"]  # Hydra's own node: set with hydra.KEY, not a run setting
    where = f"in {key.rpartition('.')[0]!r}" if "." in key else "at the top level"
    near = difflib.get_close_matches(key.rpartition(".")[2], keys, n=1)
    hint = f" (did you mean {key.rpartition('.')[0] + '.' if '.' in key else ''}{near[0]}?)" if near else ""
    allowed = f"; keys {where}: {', '.join(keys)}" if keys else ""
    return f"error: {override or key}: no such key{allowed}{hint} (a new key: +{override or key})"


def _wrong_type(override: str | None, cause: ValidationError) -> str:
    message = _first_line(cause.msg)
    wanted = re.search(r"converted to (\w+)", message)
    need = _TYPES.get(wanted.group(1), wanted.group(1)) if wanted else None
    value = override or f"{cause.full_key}={cause.value}"
    return f"error: {value}: {cause.full_key} needs {need}" if need else f"error: {value}: {message}"


def _one_line_run_and_report(original):
    """Hydra's ``run_and_report`` that reports a compose error in one line with exit status 2,
    and anything else as Hydra does."""
    def run_and_report(func):
        try:
            return func()
        except Exception as e:  # noqa: BLE001 - sorted below, the rest goes back to Hydra's report
            line = None if os.environ.get(FULL_ERROR_ENV) else compose_error_line(e, sys.argv[1:])
            if line is None:
                def again():
                    raise e
                return original(again)
            print(line, file=sys.stderr, flush=True)
            sys.exit(2)
    return run_and_report


@contextlib.contextmanager
def one_line_compose_errors() -> Iterator[None]:
    """Within: a Hydra app's compose errors end in one ``error:`` line and exit 2. Hydra has no
    hook for its report, so its module-level ``run_and_report`` (called by ``hydra.main``) is
    wrapped for the duration (hydra-core 1.3, pinned in pyproject.toml)."""
    from hydra._internal import utils

    original = utils.run_and_report
    utils.run_and_report = _one_line_run_and_report(original)
    try:
        yield
    finally:
        utils.run_and_report = original
