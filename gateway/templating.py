"""The Jinja2 environment over ``consent_ui/``: autoescaped, operator folder first.

An operator's folder (when given) overrides any template by name, and can still extend
the shipped one as ``"default:NAME"``.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader, select_autoescape

from gateway.resources import resource_dir


def template_environment(override: Path | None = None) -> Environment:
    shipped = FileSystemLoader(resource_dir("consent_ui"))
    loaders = [FileSystemLoader(override)] if override else []
    return Environment(
        loader=ChoiceLoader([*loaders, shipped, PrefixLoader({"default": shipped})]),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
