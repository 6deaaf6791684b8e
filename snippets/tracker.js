/*! consent-gateway tracker. Sends: event name, page URL (#fragment only with data-hash), data-hash flag, referrer, screen width, custom props, allowed consent categories (bundle). Never: cookies, storage IDs, form data, full user agent. */
var core = typeof CG_CORE != "undefined";
var tag = core ? script : document.currentScript;
var outbox = [];
var lastPage, shown;
var has = (name) => tag.hasAttribute("data-" + name);
// The page as sent and counted: no #fragment unless data-hash asks for hash routes (a handed-back #cg_consent= token never).
var here = () => location.href.split(has("hash") ? "#cg_consent=" : "#")[0];

// The opt-out flag localStorage cg_ignore ("true" = opted out): cg.optOut(true|false) sets it, cg.optOut() reads it.
function optOut(out) {
  try {
    if (out != null) localStorage.cg_ignore = out === true;
    return localStorage.cg_ignore == "true";
  } catch (e) {
    // Storage disabled: no opt-out flag.
  }
}

function trackEvent(name, props) {
  var skip = /^(localhost|127\.0\.0\.1|\[::1\])$|\.local$/.test(location.hostname) && !has("allow-localhost") ? "localhost" : navigator.webdriver && !has("allow-webdriver") ? "webdriver" : window != top ? "frame" : optOut() && "opt-out";
  if (skip) return has("debug") && console.info("consent-gateway: skipped: " + skip);
  outbox.push({s: tag.dataset.site, n: name, u: here(), h: has("hash"), r: document.referrer, w: innerWidth, p: props});
  trackerFlush();
}

// The bundle sends once the site configuration loaded (and analytics consent, when required).
// fetch with keepalive survives the page's unload, and credentials: "omit" keeps every cookie
// out, also where the gateway shares the site (cookies ignore ports). sendBeacon always sends
// them, so it is not used: without keepalive (Firefox before 133) an event sent while leaving may be lost.
// A string body is sent as text/plain: no CORS preflight.
function trackerFlush() {
  if (core && !trackingAllowed()) return;
  var url = new URL(tag.dataset.api || (core && config.endpoints.event) || "api/event", tag.src);
  while (outbox.length) {
    var event = outbox.shift();
    if (core) event.c = allowedCategories();
    fetch(url, {method: "POST", body: JSON.stringify(event), keepalive: true, credentials: "omit"}).catch(() => 0);
  }
}

// Without data-hash the page key ignores the hash, so a hashchange alone sends nothing.
function pageview(force) {
  var page = here();
  if (shown && (force || page != lastPage)) {
    lastPage = page;
    trackEvent("pageview");
  }
}

function linkClick(event) {
  var link = event.target.closest?.("a[href]");
  if (!link || !/^http/.test(link.protocol)) return;
  if (has("downloads") && /\.(pdf|zip|docx?|xlsx?|pptx?|csv|dmg|exe|mp[34])$/i.test(link.pathname)) trackEvent("File Download", {url: link.href});
  else if (has("outbound") && link.host != location.host) trackEvent("Outbound Link: Click", {url: link.href});
}

// A prerendered or hidden page counts its first pageview once shown.
function firstPageview() {
  var waitFor = document.prerendering ? "prerenderingchange" : document.hidden && "visibilitychange";
  if (waitFor) return document.addEventListener(waitFor, firstPageview, {once: true});
  shown = true;
  pageview();
  if (has("404") && document.querySelector('meta[name=cg-status][content="404"]')) trackEvent("404", {path: location.pathname});
}

try {
  if (!tag.dataset.site) throw "the script tag needs data-site";
  ["pushState", "replaceState"].forEach((method) => {
    var original = history[method];
    // pushState and replaceState return nothing.
    history[method] = function () {
      original.apply(this, arguments);
      pageview();
    };
  });
  ["popstate", "hashchange"].forEach((type) => addEventListener(type, () => pageview()));
  addEventListener("pageshow", (event) => event.persisted && pageview(true));
  document.addEventListener("click", linkClick);
  firstPageview();
  if (!core) {
    // Standalone t.js: cg.track, cg.optOut, and the queue stub's "track" calls, earlier and later.
    var api = (window.cg = window.cg || {});
    var replay = (args) => args[0] == "track" && trackEvent(args[1], args[2]);
    api.track = trackEvent;
    api.optOut = optOut;
    (api.q || []).forEach(replay);
    api.q = {push: replay};
  }
} catch (error) {
  if (!core || tag.dataset.site) console.error("consent-gateway:", error);
}
