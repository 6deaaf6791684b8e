"""Goals and funnels a site declares: what counts as a conversion, and the steps towards one.

A goal is a page pattern (``/checkout/*``, ``*`` matching any run of characters) or a custom
event name, as in Plausible and Matomo. A funnel is two to eight goals in order; a visit reaches
step N when it completed steps 1..N in that order (other events in between do not matter).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_FUNNEL_STEPS = 8


class GoalError(ValueError):
    """A goal or funnel declaration that cannot be used; ``key`` names the entry at fault."""

    def __init__(self, key: str, found: object, expected: str) -> None:
        super().__init__(expected)
        self.key, self.found, self.expected = key, found, expected


@dataclass(frozen=True, slots=True)
class Goal:
    name: str
    #: A pathname pattern; ``*`` matches any run of characters.
    page: str | None = None
    #: A custom event name.
    event: str | None = None

    @property
    def like_pattern(self) -> str:
        """The page pattern as a SQL LIKE pattern (with ``\\`` as the escape character)."""
        if self.page is None:
            raise ValueError(f"goal {self.name!r} is an event, not a page pattern")
        escaped = re.sub(r"([%_\\])", r"\\\1", self.page)
        return escaped.replace("*", "%")

    def matches_path(self, pathname: str) -> bool:
        """The page pattern applied in Python, as LIKE applies ``like_pattern`` in SQL."""
        if self.page is None:
            raise ValueError(f"goal {self.name!r} is an event, not a page pattern")
        return (
            re.fullmatch(".*".join(re.escape(part) for part in self.page.split("*")), pathname, re.DOTALL) is not None
        )

    def describe(self) -> str:
        return f"Visit {self.page}" if self.page is not None else f"Event {self.event}"


@dataclass(frozen=True, slots=True)
class Funnel:
    name: str
    steps: tuple[Goal, ...]


def parse_goals(entries: object, *, prefix: str) -> tuple[Goal, ...]:
    """``[[sites.ID.goals]]`` entries: ``{name, page}`` or ``{name, event}``."""
    if not isinstance(entries, list):
        raise GoalError(f"{prefix}goals", entries, "an array of tables ([[sites.ID.goals]])")
    goals: list[Goal] = []
    for index, entry in enumerate(entries):
        key = f"{prefix}goals[{index}]"
        if not isinstance(entry, Mapping) or set(entry) - {"name", "page", "event"}:
            raise GoalError(key, entry, "a table with name and either page or event")
        page, event = entry.get("page"), entry.get("event")
        if (page is None) == (event is None):
            raise GoalError(key, dict(entry), "exactly one of page (a path pattern) or event (an event name)")
        if page is not None and (not isinstance(page, str) or not page.startswith("/")):
            raise GoalError(f"{key}.page", page, "a path pattern starting with '/', such as '/checkout/*'")
        if event is not None and (not isinstance(event, str) or not event.strip()):
            raise GoalError(f"{key}.event", event, "a custom event name")
        name = entry.get("name", page or event)
        if not isinstance(name, str) or not name.strip():
            raise GoalError(f"{key}.name", name, "a non-empty name")
        goals.append(Goal(name.strip(), page, event))
    names = [goal.name for goal in goals]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise GoalError(f"{prefix}goals", duplicates[0], "each goal name once")
    return tuple(goals)


def parse_funnels(entries: object, goals: Sequence[Goal], *, prefix: str) -> tuple[Funnel, ...]:
    """``[[sites.ID.funnels]]`` entries: ``{name, steps = ["goal name", ...]}``, 2 to 8 steps."""
    if not isinstance(entries, list):
        raise GoalError(f"{prefix}funnels", entries, "an array of tables ([[sites.ID.funnels]])")
    by_name = {goal.name: goal for goal in goals}
    funnels: list[Funnel] = []
    for index, entry in enumerate(entries):
        key = f"{prefix}funnels[{index}]"
        if not isinstance(entry, Mapping) or set(entry) != {"name", "steps"}:
            raise GoalError(key, entry, "a table with name and steps")
        name, steps = entry["name"], entry["steps"]
        if not isinstance(name, str) or not name.strip():
            raise GoalError(f"{key}.name", name, "a non-empty name")
        if not isinstance(steps, list) or not 2 <= len(steps) <= MAX_FUNNEL_STEPS:
            raise GoalError(f"{key}.steps", steps, f"a list of 2 to {MAX_FUNNEL_STEPS} goal names")
        for step in steps:
            if step not in by_name:
                raise GoalError(f"{key}.steps", step, f"names of goals declared in {prefix}goals")
        funnels.append(Funnel(name.strip(), tuple(by_name[step] for step in steps)))
    return tuple(funnels)


def goal_entries(goals: Sequence[Goal]) -> list[dict[str, Any]]:
    """Goals as plain dictionaries (the stats API's view of them)."""
    return [{"name": g.name, "page": g.page, "event": g.event} for g in goals]
