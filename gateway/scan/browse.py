"""One page in one consent state, in a fresh Chromium context: what it set, stored and requested.

Every visit starts from an empty jar (a new browser context), so "none" is what a first-time visitor
gets before deciding, and "rejected"/"accepted" what they get after clicking our banner's button and
loading the page again. Cookies are attributed to whoever wrote them last: a response's
``Set-Cookie`` (seen on every response, iframes and redirects included) or a ``document.cookie``
write (an init script wraps the setter in every frame and reports the calling script's URL).
A cookie stored and removed again before the page settled (the gateway's middleware deletes an
unconsented cookie on the next request) is recorded too, as its write set it: it was set.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from gateway.cookies.setcookie import parse_set_cookie
from gateway.scan.observations import PageVisit, SeenCookie, SeenRequest, SeenStorageKey, State

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page, Request, Response

#: Where the init script reports a cookie write: name, script URL, the frame's host and path, the attributes
#: written (never the value), whether the browser kept it, and when (ms since the epoch).
_BINDING = "__cgScanCookieWritten"
#: Wraps document.cookie's setter (and CookieStore.set) in every frame before the page's own scripts run.
#: The caller is the stack frame under the setter; an inline script's (or inserted code's) URL is the page's.
_INIT_SCRIPT = r"""(() => {
  const report = (name, attributes, stored) => {
    // Frames: this function, the wrapped setter, then the caller (no URL: code a script inserted or eval'd).
    const caller = (new Error().stack || "").split("\n")[3] || "";
    const match = caller.match(/((?:https?|file):\/\/[^\s()]+?):\d+:\d+\)?\s*$/);
    const source = match ? match[1] : "";
    try {
      const where = [location.hostname, location.pathname];
      window.BINDING(String(name), source || location.href, ...where, String(attributes), stored, Date.now());
    } catch (e) {}
  };
  const cookie = Object.getOwnPropertyDescriptor(Document.prototype, "cookie");
  if (cookie && cookie.set) {
    Object.defineProperty(Document.prototype, "cookie", {
      configurable: true,
      enumerable: cookie.enumerable,
      get: cookie.get,
      set(value) {
        const text = String(value);
        const end = text.indexOf(";") < 0 ? text.length : text.indexOf(";");
        const pair = text.slice(0, end);
        const name = pair.includes("=") ? pair.slice(0, pair.indexOf("=")).trim() : "";
        const result = cookie.set.call(this, value);
        const stored = cookie.get.call(this).split("; ").some((item) => item.split("=")[0] == name);
        report(name, text.slice(end), stored);
        return result;
      }
    });
  }
  if (window.CookieStore && CookieStore.prototype.set) {
    const set = CookieStore.prototype.set;
    CookieStore.prototype.set = function (first, ...rest) {
      report(typeof first == "object" && first ? first.name : first, "", true);
      return set.call(this, first, ...rest);
    };
  }
})();
""".replace("BINDING", _BINDING)
_STORAGE_KEYS = (
    """() => ({origin: location.origin, local: Object.keys(localStorage), session: Object.keys(sessionStorage)})"""
)
_LINKS = """() => Array.from(document.querySelectorAll("a[href]"), (a) => a.href)"""
_SNIPPET_SRC = """() => { const s = document.querySelector("script[data-site][src]"); return s ? s.src : null; }"""
_BANNER = '[data-cg="banner"]'
#: How long closing a page may take before the scan goes on without waiting for it.
_CLOSE_SECONDS = 10.0
#: How long a response's raw headers (its Set-Cookie lines) may take to arrive before it is skipped.
_HEADERS_SECONDS = 5.0
_BUTTONS: dict[State, str] = {"rejected": "reject-all", "accepted": "accept-all"}


@dataclass(frozen=True, slots=True)
class BrowseOptions:
    user_agent: str
    #: How long a page may keep the network busy before it is recorded anyway (network idle, bounded).
    settle_ms: int = 5_000
    #: How long our banner may take to appear on a page that embeds the snippet.
    banner_ms: int = 10_000
    #: A navigation or click that takes longer than this fails the visit.
    timeout_ms: int = 30_000


@dataclass(frozen=True, slots=True)
class PageResult:
    visit: PageVisit
    links: tuple[str, ...] = ()
    #: The URL our snippet (``script[data-site]``) was loaded from, when the page embeds it.
    snippet_url: str | None = None


@dataclass(frozen=True, slots=True)
class _Write:
    """One cookie write; its value is never kept (the init script does not even send it)."""

    name: str
    by: Literal["header", "script"]
    url: str
    host: str  # the host whose jar the write went to (the response's, or the writing frame's)
    page_path: str  # the path of the response or frame (a cookie without Path gets its directory)
    attributes: str  # "; Path=/; Max-Age=60..." as written
    stored: bool  # the browser kept it (not a deletion, not refused)
    at: datetime  # when it was written (Max-Age counts from here)

    def cookie(self, jar_domain: str | None = None) -> SeenCookie | None:
        """The cookie this write stored, as the jar would hold it (for one removed before the page settled)."""
        parsed = parse_set_cookie(f"{self.name or 'x'}=x{self.attributes}")
        if parsed is None:
            return None
        expiry = parsed.expiry(self.at)
        if expiry is not None:  # browsers cap a cookie's lifetime at 400 days (RFC 6265bis 5.5)
            expiry = min(expiry, self.at + timedelta(days=400))
        return SeenCookie(
            name=self.name,
            domain=f".{parsed.domain}" if parsed.domain else self.host,
            path=parsed.path or _default_path(self.page_path),
            expires=expiry,
            http_only=parsed.http_only,
            secure=parsed.secure,
            same_site=parsed.same_site if parsed.same_site in {"Strict", "Lax", "None"} else None,
            set_by=self.by,
            set_by_url=self.url,
        )


def _default_path(path: str) -> str:
    """RFC 6265 5.1.4: the directory of the request's path."""
    if not path.startswith("/") or path.count("/") == 1:
        return "/"
    return path[: path.rindex("/")]


@dataclass
class _Recorder:
    """What one context saw happen, in order. Not slotted: Playwright marks the bound methods it is handed."""

    hosts: frozenset[str]
    now: datetime  # a response's Max-Age counts from here
    #: Writes in the order they happened: a response's slot is taken when it arrives and filled once its
    #: headers are read, so a script's write during that read still comes after it.
    slots: list[list[_Write]] = field(default_factory=list)
    requests: dict[tuple[str, str], SeenRequest] = field(default_factory=dict)
    pending: set[asyncio.Task[None]] = field(default_factory=set)
    #: Where the writes of this state begin: after the decision, for "rejected" and "accepted".
    since: int = 0
    answered: set[int] = field(default_factory=set)

    def on_cookie_written(
        self, source: Any, name: str, script_url: str, host: str, path: str, attributes: str, stored: bool, at: float
    ) -> None:
        moment = datetime.fromtimestamp(float(at) / 1000, UTC)
        write = _Write(
            str(name), "script", str(script_url), str(host).lower(), str(path), str(attributes), stored, moment
        )
        self.slots.append([write])

    def on_request(self, request: Request) -> None:
        parts = urlsplit(request.url)
        host = (parts.hostname or "").lower()
        if parts.scheme in {"http", "https"} and host not in self.hosts:
            self.requests.setdefault(
                (request.url, request.resource_type), SeenRequest(request.url, host, request.resource_type)
            )

    def on_response(self, response: Response) -> None:
        slot: list[_Write] = []
        self.slots.append(slot)
        task = asyncio.ensure_future(self._read_set_cookies(response, slot))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _read_set_cookies(self, response: Response, slot: list[_Write]) -> None:
        chain: list[Response] = [response]
        earlier = response.request.redirected_from
        while earlier is not None:  # redirects set cookies too; their responses raise no event of their own
            if (redirect := await earlier.response()) is not None:
                chain.insert(0, redirect)
            earlier = earlier.redirected_from
        for answer in chain:
            if id(answer) in self.answered:
                continue
            self.answered.add(id(answer))
            try:
                # Raw headers wait for Chromium's extra info, which a response from the cache never gets: bounded.
                headers = await asyncio.wait_for(answer.headers_array(), _HEADERS_SECONDS)
            except Exception:  # noqa: BLE001, S112 - gone with its page, or from the cache (which sets no cookie)
                continue
            parts = urlsplit(answer.url)
            for header in headers:
                if header["name"].lower() == "set-cookie":
                    for line in header["value"].split("\n"):  # Chromium joins several with newlines
                        pair, _, attributes = line.partition(";")
                        name = pair.split("=", 1)[0].strip() if "=" in pair else ""
                        parsed = parse_set_cookie(f"{name or 'x'}=x;{attributes}")
                        stored = parsed is not None and not parsed.is_deletion(self.now)
                        host = (parts.hostname or "").lower()
                        slot.append(
                            _Write(name, "header", answer.url, host, parts.path, f";{attributes}", stored, self.now)
                        )

    async def settle(self) -> None:
        """Every response's headers read (each bounded by ``_HEADERS_SECONDS``); later ones join while waiting."""
        while self.pending:
            await asyncio.gather(*list(self.pending), return_exceptions=True)

    def writes(self) -> list[_Write]:
        return [write for slot in self.slots for write in slot]

    def attribute(self, name: str, domain: str) -> _Write | None:
        """The last write that stored ``name`` on a host the cookie's domain covers (else the last write of it)."""
        bare = domain.lstrip(".").lower()
        named = [write for write in self.writes() if write.name == name]
        covered = [write for write in named if write.host == bare or write.host.endswith("." + bare)]
        for candidates in ([w for w in covered if w.stored], covered, [w for w in named if w.stored], named):
            if candidates:
                return candidates[-1]
        return None

    def decided(self) -> None:
        """The decision is being made: what happens from now on is this state's (earlier requests and removed
        cookies were the page before a decision, which the "none" visit records)."""
        self.requests.clear()
        self.since = len(self.slots)

    def removed(self, kept: set[tuple[str, str, str]]) -> list[SeenCookie]:
        """Cookies stored in this state and gone by its end (a later response or script removed them): a
        tracker's cookie that lived a moment was still set. The last stored write of each counts."""
        latest: dict[tuple[str, str, str], SeenCookie] = {}
        for write in (write for slot in self.slots[self.since :] for write in slot):
            cookie = write.cookie() if write.stored else None
            if cookie is not None:
                latest[(cookie.name, cookie.domain.lstrip("."), cookie.path)] = cookie
        return [cookie for key, cookie in latest.items() if key not in kept]


async def _new_context(browser: Browser, recorder: _Recorder, options: BrowseOptions) -> BrowserContext:
    context = await browser.new_context(user_agent=options.user_agent, ignore_https_errors=False)
    context.set_default_timeout(options.timeout_ms)
    context.set_default_navigation_timeout(options.timeout_ms)
    await context.expose_binding(_BINDING, recorder.on_cookie_written)
    await context.add_init_script(_INIT_SCRIPT)
    context.on("request", recorder.on_request)
    context.on("response", recorder.on_response)
    return context


async def _settle(page: Page, options: BrowseOptions) -> None:
    """Network idle (no request for 500 ms), or ``settle_ms`` at most: some pages poll forever."""
    try:
        await page.wait_for_load_state("networkidle", timeout=options.settle_ms)
    except Exception:  # noqa: BLE001, S110 - still busy: record what is there by now
        pass


async def _banner_shown(page: Page, options: BrowseOptions) -> bool:
    if await page.evaluate(_SNIPPET_SRC) is None:
        return False
    try:
        await page.locator(_BANNER).first.wait_for(state="visible", timeout=options.banner_ms)
    except Exception:  # noqa: BLE001 - the snippet is there but showed no banner (a broken config, a blocked fetch)
        return False
    return True


async def _decide(page: Page, state: State, options: BrowseOptions) -> None:
    """Click "Reject all" or "Accept all" in our banner and wait until the banner has gone (decision stored)."""
    await page.locator(f'{_BANNER} [data-cg="{_BUTTONS[state]}"]').first.click()
    await page.locator(_BANNER).first.wait_for(state="hidden")
    await _settle(page, options)


async def _cookies(context: BrowserContext, recorder: _Recorder) -> tuple[SeenCookie, ...]:
    await recorder.settle()
    seen: list[SeenCookie] = []
    for cookie in await context.cookies():
        name, domain = cookie.get("name", ""), cookie.get("domain", "")
        write = recorder.attribute(name, domain)
        expires = cookie.get("expires", -1)
        seen.append(
            SeenCookie(
                name=name,
                domain=domain,
                path=cookie.get("path", "/"),
                expires=datetime.fromtimestamp(expires, UTC) if expires is not None and expires > 0 else None,
                http_only=bool(cookie.get("httpOnly", False)),
                secure=bool(cookie.get("secure", False)),
                same_site=cookie.get("sameSite"),
                # A cookie no write was seen for came from neither a response nor document.cookie we saw:
                # a script by some other way (a worker), so "script" with no URL.
                set_by=write.by if write else "script",
                set_by_url=write.url if write else "",
            )
        )
    seen.extend(recorder.removed({(cookie.name, cookie.domain.lstrip("."), cookie.path) for cookie in seen}))
    return tuple(sorted(seen, key=lambda cookie: (cookie.name, cookie.domain, cookie.path)))


async def _storage(page: Page) -> tuple[SeenStorageKey, ...]:
    keys: dict[tuple[str, str, str], SeenStorageKey] = {}
    for frame in page.frames:
        try:
            found = await frame.evaluate(_STORAGE_KEYS)
        except Exception:  # noqa: BLE001, S112 - a sandboxed or detached frame has no storage to read
            continue
        origin = str(found["origin"])
        if origin == "null":
            continue
        for kind, listed in (("localStorage", found["local"]), ("sessionStorage", found["session"])):
            for key in listed:
                keys.setdefault((kind, str(key), origin), SeenStorageKey(kind, str(key), origin))  # type: ignore[arg-type]
    return tuple(sorted(keys.values(), key=lambda item: (item.origin, item.kind, item.key)))


async def visit_page(
    browser: Browser, url: str, state: State, *, hosts: frozenset[str], options: BrowseOptions, now: datetime
) -> PageResult:
    """``url`` in ``state``, in a context of its own. For "rejected"/"accepted" the page is loaded, our
    banner's button clicked and the page loaded again; requests (and cookies removed again) are those from
    the click on, cookies the whole jar at the end. A page
    without our banner in those states is recorded with ``banner=False`` and no decision."""
    recorder = _Recorder(hosts, now)
    context = await _new_context(browser, recorder, options)
    try:
        page = await context.new_page()
        try:
            await page.goto(url, wait_until="load")
            await _settle(page, options)
            banner = await _banner_shown(page, options)
            snippet_url = await page.evaluate(_SNIPPET_SRC)
            links = tuple(str(link) for link in await page.evaluate(_LINKS)) if state == "none" else ()
            if state != "none" and banner:
                recorder.decided()
                await _decide(page, state, options)
                await page.reload(wait_until="load")
                await _settle(page, options)
            visit = PageVisit(
                url=url,
                state=state,
                banner=banner,
                cookies=await _cookies(context, recorder),
                storage=await _storage(page),
                requests=tuple(recorder.requests.values()),
            )
            return PageResult(visit, links, snippet_url)
        except Exception as error:  # noqa: BLE001 - a page that fails is reported, the scan goes on
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            return PageResult(PageVisit(url, state, False, (), (), (), error=first_line[:300]))
    finally:
        await recorder.settle()
        with contextlib.suppress(Exception):  # a context that will not close is closed with the browser
            await asyncio.wait_for(context.close(), _CLOSE_SECONDS)


async def fetch_text(context: BrowserContext, url: str) -> str | None:
    """The body of ``url`` when it answers 2xx (robots.txt, a sitemap), loaded by the browser itself so the
    scan resolves hosts as its pages do; None when it is missing or fails."""
    page = await context.new_page()
    try:
        # "load", not "commit": closing a page still loading can hang in Playwright (seen on a 404 text page).
        response = await page.goto(url, wait_until="load")
        if response is None or not response.ok:
            return None
        return (await response.body()).decode("utf-8", errors="replace")
    except Exception:  # noqa: BLE001 - no robots.txt or sitemap is the common case, not an error
        return None
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(page.close(), _CLOSE_SECONDS)
