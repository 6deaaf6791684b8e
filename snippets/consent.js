/*! consent-gateway. Sends: site id, language, b=1 if no decision is stored (a banner impression); on a decision: choices, method, policy revision, page path, GPC, consent token; the names (never values) of cookies the site does not declare. Never cookies: requests omit credentials. */
// Google Consent Mode v2: everything but security storage is denied until a decision exists.
window.dataLayer = window.dataLayer || [];
function gtag() {
  dataLayer.push(arguments);
}
window.gtag = window.gtag || gtag;
var MODES = {ad_storage: "advertising", ad_user_data: "advertising", ad_personalization: "advertising", analytics_storage: "analytics", functionality_storage: "functional", personalization_storage: "functional", security_storage: "essential"};
consentMode("default", {wait_for_update: 500});

var CG_CORE = true;
var COOKIE = "cg_consent";
var script = document.currentScript || [...document.querySelectorAll("script[data-site]")].pop();
var site = script.dataset.site;
var secure = location.protocol == "https:" ? "; Secure" : "";
var gpc = navigator.globalPrivacyControl === true;
var lang, config, state;
var listeners = [];
var handled = new WeakSet();
var scriptChain = Promise.resolve();

function consentMode(command, modes) {
  for (var key in MODES) modes[key] = allows(MODES[key]) ? "granted" : "denied";
  gtag("consent", command, modes);
}

// no-cache: revalidate, so a policy revision bump shows the banner at once.
// A JSON string body goes as text/plain (the gateway reads it the same): no CORS preflight.
function request(url, body) {
  return fetch(url, {method: body && "POST", credentials: "omit", cache: "no-cache", body: body && JSON.stringify(body)}).then((response) => {
    if (!response.ok) throw response.status;
    return response.json();
  });
}

function warn(message, error) {
  console.warn("consent-gateway: " + message, error);
}

function readCookie() {
  var match = document.cookie.match("(^|; *)" + COOKIE + "=([^;]*)");
  return match && match[2];
}

// The site's categories; a service belongs to the category that lists it.
function categories() {
  return (config && config.categories) || [];
}

function serviceCategory(id) {
  return categories().find((cat) => (cat.services || []).some((svc) => svc.id == id));
}

// GPC sent now but not when the visitor decided refuses analytics and advertising (their services
// too), as the gateway's ConsentMiddleware decides; a choice made while sending GPC stands.
function allows(id) {
  var cat = categories().find((c) => c.id == id);
  var owner = cat || serviceCategory(id);
  if (id == "essential" || (cat && cat.required)) return true;
  if (!state || !owner || (gpc && !state.gpc && /^(analytics|advertising)$/.test(owner.id))) return false;
  return cat ? state.categories[id] === true : (owner.required || state.categories[owner.id] === true) && state.services[id] === true;
}

// Choices as sent to the gateway: what the current decision allows (all off before one; GPC
// applied, so no switch shows on that GPC turned off), or all set to value.
function choices(value) {
  var chosen = {categories: {}, services: {}};
  var pick = (id) => (value == null ? allows(id) : value);
  categories().forEach((cat) => {
    if (!cat.required) chosen.categories[cat.id] = pick(cat.id);
    (cat.services || []).forEach((svc) => {
      chosen.services[svc.id] = pick(svc.id);
    });
  });
  return chosen;
}

// The gateway's answer (POST /consent, /consent/withdraw or GET /consent): stored, then applied.
function adopt(token, answer) {
  var given = answer.state;
  var next = {token, revision: given.revision, categories: given.categories, services: given.services || {}, method: given.method, gpc: given.gpc, expires: given.expires_at};
  try {
    localStorage.cg_state = JSON.stringify(next);
  } catch (e) {
    // No localStorage: the decision holds for this page.
  }
  apply(next);
}

function store(answer) {
  var domain = script.dataset.cookieDomain || config.cookie_domain;
  var maxAge = Math.round((Date.parse(answer.expires_at) - Date.now()) / 1000);
  document.cookie = COOKIE + "=" + answer.token + "; Max-Age=" + maxAge + "; Path=/; SameSite=Lax" + secure + (domain ? "; Domain=" + domain : "");
  adopt(answer.token, answer);
}

// A failed request still applies the choice, for this page only.
function post(path, body, chosen) {
  request(config.endpoints.consent + path, body).then(store, (error) => {
    warn("not recorded", error);
    apply(Object.assign({revision: config.revision, gpc}, chosen));
  });
}

function currentToken() {
  return readCookie() || (state && state.token);
}

function decide(chosen, method) {
  var token = currentToken();
  post("", {site, choices: chosen.categories, services: chosen.services, method, revision: config.revision, language: lang, page: location.pathname, gpc, token}, Object.assign({token, method}, chosen));
}

function withdraw() {
  var token = currentToken();
  var off = Object.assign({token, method: "withdraw"}, choices(false));
  if (!config) return;
  if (token) post("/withdraw", {site, token, page: location.pathname}, off);
  else apply(off);
}

// From an iframe placeholder: allow its category (and service), keep the rest as is.
function allowOne(categoryId, serviceId) {
  var chosen = choices();
  chosen.categories[categoryId] = true;
  if (serviceId) chosen.services[serviceId] = true;
  decide(chosen, "custom");
}

function apply(next) {
  state = next;
  consentMode("update", {});
  clearDenied();
  setTimeout(clearDenied, 1000);
  setTimeout(clearDenied, 5000);
  scan();
  closeDialog();
  renderState();
  listeners.forEach(notify);
  dispatchEvent(new CustomEvent("cg:consent", {detail: structuredClone(state)}));
  trackerFlush();
}

function notify(fn) {
  try {
    fn(structuredClone(state));
  } catch (e) {
    // A site's listener failing must not stop the others.
  }
}

// Clearing denied categories: their cookies, on every path and domain they may use, and storage keys.
function matches(patterns, name) {
  return (patterns || []).some((pattern) => (pattern.slice(-1) == "*" ? name.startsWith(pattern.slice(0, -1)) : pattern == name));
}

// Max-Age=0 alone deletes (RFC 6265 5.2.2: it wins over Expires), in every browser this script runs in.
function expire(name) {
  var parts = location.pathname.split("/");
  var labels = location.hostname.split(".");
  var paths = ["/"];
  var domains = [""];
  for (var i = 2; i <= parts.length; i++) paths.push(parts.slice(0, i).join("/"));
  for (var j = 0; j < labels.length - 1; j++) domains.push(labels.slice(j).join("."), "." + labels.slice(j).join("."));
  paths.forEach((path) => domains.forEach((domain) => {
    document.cookie = name + "=; Max-Age=0; Path=" + path + (domain && "; Domain=" + domain) + secure;
  }));
}

// Also a check for cookies set by scripts (once the configuration says what the site declares):
// this runs after each decision, 1 s and 5 s later, and when the page is hidden.
function clearDenied() {
  if (config) reportCookies();
  categories().forEach((cat) => {
    if (!state || allows(cat.id)) return;
    document.cookie.split(/; */).forEach((pair) => {
      var name = pair.split("=")[0];
      if (name != COOKIE && matches((cat.cookies || []).map((cookie) => cookie.name).concat(cat.clear || []), name)) expire(name);
    });
    try {
      [localStorage, sessionStorage].forEach((area) => Object.keys(area).forEach((key) => {
        if (key != "cg_state" && matches(cat.storage, key)) area.removeItem(key);
      }));
    } catch (e) {
      // Storage disabled: nothing to clear.
    }
  });
}

// Cookies set by scripts: the names of those in document.cookie the site does not declare
// (config.known), each once per page load, at most 20 a report. Only a token followed by "=" at
// the start of each pair is matched, so no value is ever read into what is sent.
var reported = new Set();

function reportCookies() {
  var names = [];
  document.cookie.split("; ").forEach((pair) => {
    var name = (pair.match(/^([\w!#$%&'*+.^`|~-]{1,128})=/) || [])[1];
    if (name && !reported.has(name) && !RegExp(config.known).test(name) && names.length < 20) {
      reported.add(name);
      names.push(name);
    }
  });
  if (names[0]) fetch(config.endpoints.cookies, {method: "POST", body: JSON.stringify({s: site, c: names}), keepalive: true, credentials: "omit"}).catch(warn);
}

// Blocked scripts and iframes run or load once allowed, scripts in document order, once each.
function permitted(el) {
  var cat = el.dataset.category;
  var svc = el.dataset.service;
  if (cat && cat[0] == "!") return !!state && !allows(cat.slice(1));
  return (!cat || allows(cat)) && (!svc || allows(svc));
}

function runScript(el) {
  return new Promise((resolve) => {
    var fresh = document.createElement("script");
    for (var a of el.attributes) {
      if (!/^(type|data-category|data-service)$/.test(a.name)) fresh.setAttribute(a.name, a.value);
    }
    if (el.dataset.type) fresh.type = el.dataset.type;
    fresh.nonce = script.nonce;
    fresh.onload = fresh.onerror = resolve;
    if (!el.src) fresh.text = el.text;
    if (el.isConnected) el.replaceWith(fresh);
    if (!el.src || !fresh.isConnected) resolve();
  });
}

function guardFrame(frame) {
  var svc = frame.dataset.service;
  var categoryId = frame.dataset.category || (serviceCategory(svc) || {}).id;
  var title = categoryTitle(categoryId);
  var holder = frame.cgHolder;
  if (permitted(frame)) {
    handled.add(frame);
    if (holder) holder.remove();
    frame.src = frame.dataset.src;
    frame.style.display = "";
  } else if (!holder) {
    holder = frame.cgHolder = h("div", {class: "cg-placeholder", role: "region", "aria-label": title}, [h("p", {text: t("iframe.placeholder", title)}), h("button", {type: "button", text: t("iframe.allow", title)})]);
    holder.lastChild.onclick = () => allowOne(categoryId, svc);
    frame.before(holder);
    frame.style.display = "none";
  }
}

function scan() {
  if (config) document.querySelectorAll(":is(script[type='text/plain'],iframe[data-src]):is([data-category],[data-service])").forEach((el) => {
    if (handled.has(el)) return;
    if (el.tagName == "IFRAME") guardFrame(el);
    else if (permitted(el)) {
      handled.add(el);
      scriptChain = scriptChain.then(() => runScript(el));
    }
  });
}

// For the tracker (tracker.js): may it send now, and which categories are allowed.
function trackingAllowed() {
  return !!config && (config.analytics_consent != "required" || allows("analytics"));
}

function allowedCategories() {
  return categories().map((cat) => cat.id).filter(allows);
}

// At load: a token handed back by the privacy center (#cg_consent=...), checked by the gateway;
// else the decision this browser knows, else the gateway's answer for the token, else the banner.
function loadDecision() {
  var handed = location.hash.match(/^#cg_consent=([\w.-]+)$/);
  var token = readCookie();
  var saved;
  if (handed) {
    history.replaceState(null, "", location.pathname + location.search);
    return request(config.endpoints.consent + "?site=" + encodeURIComponent(site) + "&token=" + handed[1]).then((answer) => {
      if (answer.decision && answer.state.revision === config.revision) store({token: handed[1], expires_at: answer.state.expires_at, state: answer.state});
      else loadDecision();
    }, showBanner);
  }
  try {
    saved = JSON.parse(localStorage.cg_state);
  } catch (e) {
    saved = null;
  }
  if (!token) return showBanner();
  // A state saved before it recorded GPC (no "gpc" key) is asked for again: GPC may decide it.
  if (saved && saved.token == token && "gpc" in saved && saved.revision === config.revision && Date.parse(saved.expires) > Date.now()) return apply(saved);
  return request(config.endpoints.consent + "?site=" + encodeURIComponent(site) + "&token=" + encodeURIComponent(token)).then((answer) => {
    if (answer.decision && answer.state.revision === config.revision) adopt(token, answer);
    else showBanner();
  }, showBanner);
}

// window.cg: callable like the queue stub, cg("track", "Signup", {plan: "pro"}), and with methods.
function installApi() {
  var queue = (window.cg && window.cg.q) || [];
  var api = (method, ...args) => api[method] && api[method](...args);
  Object.assign(api, {
    allows,
    withdraw,
    optOut,
    show: showDialog,
    track: trackEvent,
    state: () => structuredClone(state || null),
    on: (name, fn) => {
      if (name != "consent") return;
      listeners.push(fn);
      if (state) setTimeout(notify, 0, fn);
    }
  });
  window.cg = api;
  return () => queue.forEach((args) => api(...args));
}

function startConsent() {
  var replay;
  if (!site) return console.error("consent-gateway: the script tag needs data-site");
  lang = (script.dataset.lang || document.documentElement.lang || navigator.language).split("-")[0].toLowerCase();
  replay = installApi();
  document.addEventListener("click", (event) => {
    if (event.target.closest && event.target.closest("[data-cg-open]")) {
      event.preventDefault();
      showDialog();
    }
  });
  document.addEventListener("visibilitychange", () => document.hidden && clearDenied());
  // b=1: no decision is stored, so the banner will show; the gateway counts it (per day, country, device).
  request(new URL("api/config/" + encodeURIComponent(site) + "?lang=" + encodeURIComponent(lang) + (readCookie() || /cg_consent=/.test(location.hash) ? "" : "&b=1"), script.src)).then((loaded) => {
    config = loaded;
    config.banner = config.banner || {};
    // Endpoints are relative to the script: the gateway may sit under a path of the site or a proxy.
    for (var key in config.endpoints) config.endpoints[key] = new URL(config.endpoints[key], script.src).href;
    scan();
    new MutationObserver(scan).observe(document.documentElement, {childList: true, subtree: true});
    trackerFlush();
    // Cookies set by scripts: now, once the page settled, and whenever denied cookies are cleared.
    reportCookies();
    setTimeout(reportCookies, 3000);
    return loadDecision();
  }).catch((error) => warn(config ? "failed" : "gateway unreachable", error)).then(replay).catch(warn);
}

try {
  startConsent();
} catch (error) {
  console.error("consent-gateway:", error);
}
