"""The ``user_agents`` adapter: its objects never leave this module.

Parsing a user agent costs tens of microseconds and the same few hundred strings repeat,
so results are cached (LRU), as Plausible does.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from user_agents import parse as _parse

DeviceType = Literal["desktop", "mobile", "tablet", "bot", "other"]


@dataclass(frozen=True, slots=True)
class UAInfo:
    browser: str
    browser_version: str
    os: str
    os_version: str
    device: DeviceType
    is_bot: bool


@lru_cache(maxsize=4096)
def parse_user_agent(text: str) -> UAInfo:
    agent = _parse(text[:512])
    device: DeviceType
    if agent.is_bot:
        device = "bot"
    elif agent.is_tablet:
        device = "tablet"
    elif agent.is_mobile:
        device = "mobile"
    elif agent.is_pc:
        device = "desktop"
    else:
        device = "other"
    return UAInfo(
        browser=agent.browser.family or "Other",
        browser_version=".".join(str(part) for part in agent.browser.version[:2]),
        os=agent.os.family or "Other",
        os_version=".".join(str(part) for part in agent.os.version[:2]),
        device=device,
        is_bot=bool(agent.is_bot),
    )
