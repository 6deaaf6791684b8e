"""The scan report as one self-contained HTML file: what a DPO hands an auditor.

Everything observed on a scanned site is hostile text (a cookie may be named ``<script>``), so the
template is autoescaped and the page carries a Content-Security-Policy that forbids scripts and any
load from elsewhere. The only links are the scanned pages' own ``http(s)`` URLs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.categories import Category
from gateway.scan.report import CookieFinding, ScanReport, Violation
from gateway.templating import template_environment

TEMPLATE = "scan_report.html"
#: The order categories are listed in: what needs attention first.
_CATEGORY_ORDER: tuple[Category | None, ...] = (None, "advertising", "analytics", "functional", "essential")
_KIND_TITLES = {
    "before_decision": "Before any decision",
    "after_reject": 'After "Reject all"',
    "expiry_over_cap": "Lifetime over its cap",
    "undeclared": "Not declared in the site's configuration",
}


@dataclass(frozen=True, slots=True)
class CookieGroup:
    category: Category | None
    title: str
    cookies: tuple[CookieFinding, ...]


@dataclass(frozen=True, slots=True)
class ViolationGroup:
    kind: str
    title: str
    violations: tuple[Violation, ...]


def render_html(report: ScanReport, *, templates: Path | None = None) -> str:
    """The report page; ``templates``: an operator's folder that may override ``scan_report.html``."""
    template = template_environment(templates).get_template(TEMPLATE)
    return template.render(**_context(report))


def _context(report: ScanReport) -> dict[str, object]:
    cookie_groups = [
        CookieGroup(
            category,
            "Unknown" if category is None else category.capitalize(),
            tuple(cookie for cookie in report.cookies if cookie.category == category),
        )
        for category in _CATEGORY_ORDER
    ]
    violation_groups = [
        ViolationGroup(kind, title, tuple(v for v in report.violations if v.kind == kind))
        for kind, title in _KIND_TITLES.items()
    ]
    return {
        "report": report,
        "summary": report.summary,
        "cookie_groups": [group for group in cookie_groups if group.cookies],
        "violation_groups": [group for group in violation_groups if group.violations],
        # Only the scanned pages become links, and only as http(s): a stored report is data, not trusted markup.
        "linkable": frozenset(page for page in report.pages if page.startswith(("https://", "http://"))),
        "duration": _duration(report),
    }


def _duration(report: ScanReport) -> str:
    seconds = max(0, int((report.finished_at - report.started_at).total_seconds()))
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
