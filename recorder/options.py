"""The choices a run is made with: modes and policies (``str`` enums that refuse typos
with the list of valid values) and the rules for run names."""

from __future__ import annotations

import unicodedata
from enum import StrEnum

from .errors import ConfigError

__all__ = ["MAX_NAME_LENGTH", "Mode", "OnDivergence", "validate_name"]

MAX_NAME_LENGTH = 200


class Mode(StrEnum):
    """What a run does with each step.

    - ``auto``: replay what is recorded, run the rest live and record it;
    - ``replay``: never go live; a step that is not recorded raises ReplayMissError;
    - ``record``: run everything live and record it as the new truth (a new generation;
      the older one is kept but no longer replayed).
    """

    AUTO = "auto"
    REPLAY = "replay"
    RECORD = "record"

    @classmethod
    def _missing_(cls, value: object) -> Mode:
        valid = ", ".join(repr(m.value) for m in cls)
        raise ConfigError(f"mode={value!r} is not a mode; use one of {valid}.")


class OnDivergence(StrEnum):
    """What a re-run does when it asks for a new step while recorded ones are unused."""

    WARN = "warn"
    RAISE = "raise"

    @classmethod
    def _missing_(cls, value: object) -> OnDivergence:
        valid = ", ".join(repr(m.value) for m in cls)
        raise ConfigError(f"on_divergence={value!r} is not valid; use one of {valid}.")


_SLASHES = frozenset("/\\\u2215\u2044\u29f8\u29f9\u2216\ufe68\uff0f\uff3c")
"""Path separators and the characters that look like them (NFKC folds a few more)."""


def validate_name(name: object) -> str:
    """A run name is user text that keys records: refuse what could not be a name."""
    if not isinstance(name, str):
        raise ConfigError(f"a run name is a str, not {type(name).__name__}.")
    problem = None
    folded = unicodedata.normalize("NFKC", name)
    if not name.strip():
        problem = "it is empty"
    elif len(name) > MAX_NAME_LENGTH:
        problem = f"it is {len(name)} characters long (at most {MAX_NAME_LENGTH})"
    elif any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in name):
        problem = "it contains control or invisible characters"
    elif any(c in _SLASHES for c in folded) or folded in (".", ".."):
        problem = "it contains a path separator (or a look-alike) or is a dot name"
    elif name != name.strip():
        problem = "it starts or ends with white space"
    if problem:
        raise ConfigError(
            f"run name {name[:60]!r} is refused: {problem}. Use letters, digits, spaces, "
            "dashes, dots and underscores, for example 'triage-v2'."
        )
    return name
