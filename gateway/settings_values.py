"""The two values every settings module shares: the error a configuration mistake raises, and a
secret that never prints. Kept apart so that modules gateway/settings.py imports (the forwarders'
settings) can use them without importing settings back."""

from __future__ import annotations

from dataclasses import dataclass, field


class SettingsError(ValueError):
    """A configuration mistake, worded for the person who made it."""


@dataclass(frozen=True, slots=True)
class Secret:
    """A value that never prints (logs, tracebacks, reprs)."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__
