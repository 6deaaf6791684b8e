// consent-gateway banner and preferences dialog, in a Shadow DOM.
var TEXTS = __CG_TEXTS__;
var shadow, backdrop, banner, bannerModal, dialog, returnFocus;

function t(key, category) {
  var text = (config.texts || {})[key];
  return (text == null ? TEXTS[key] || "" : text + "").replace("{category}", category);
}

function categoryTitle(id) {
  return t("category." + id + ".title") || id;
}

// h("p", {class: "x", text: "..."}, [children]): DOM built from data, never from HTML.
function h(tag, props, kids) {
  var el = document.createElement(tag);
  for (var key in props) {
    if (key == "text") el.textContent = props.text;
    else if (props[key] != null && props[key] !== false) el.setAttribute(key, props[key]);
  }
  (kids || []).forEach((kid) => kid && el.append(kid));
  return el;
}

function mount() {
  var host = h("div", {id: "cg-root"});
  var css = __CG_CSS__;
  var theme = config.banner.theme || {};
  if (shadow) return;
  for (var key in theme) {
    if (key.startsWith("--cg-")) host.style.setProperty(key, theme[key]);
  }
  shadow = host.attachShadow({mode: "open"});
  try {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(css);
    shadow.adoptedStyleSheets = [sheet];
  } catch (e) {
    shadow.append(h("style", {nonce: script.nonce, text: css}));
  }
  backdrop = shadow.appendChild(h("div", {class: "backdrop", hidden: ""}));
  (document.body || document.documentElement).append(host);
  document.addEventListener("keydown", onKey, true);
}

function button(cls, hook, text, onclick) {
  var el = h("button", {type: "button", class: cls, "data-cg": hook, text: text});
  el.onclick = onclick;
  return el;
}

// "Reject all" and "Accept all": same class, adjacent, same level.
function choiceButtons(third) {
  return h("div", {class: "buttons"}, [
    button("btn", "reject-all", t("button.reject_all"), () => decide(choices(false), "reject_all")),
    button("btn", "accept-all", t("button.accept_all"), () => decide(choices(true), "accept_all")),
    third
  ]);
}

function paragraph(text, cls) {
  return text && h("p", {class: cls, text: text});
}

function linkTo(url, key) {
  return url && h("p", {}, [h("a", {href: url, text: t(key)})]);
}

function focusables(box) {
  return [...box.querySelectorAll("button,a,input:enabled,summary")];
}

function showBanner() {
  var position = config.banner.position;
  bannerModal = position == "modal";
  mount();
  banner = shadow.appendChild(h("div", {class: "banner " + (bannerModal || position == "box" ? position : "bar"), part: "banner", "data-cg": "banner", lang: config.lang, role: bannerModal ? "dialog" : "region", "aria-modal": bannerModal, "aria-label": t("banner.title")}, [
    h("h2", {text: t("banner.title")}),
    paragraph(t("banner.description")),
    gpc && paragraph(t("banner.gpc"), "gpc"),
    linkTo(config.policy_url, "link.policy"),
    choiceButtons(button("btn alt", "customize", t("button.customize"), showDialog))
  ]));
  renderState();
  if (bannerModal) focusables(banner)[0].focus();
}

// Which of banner, dialog and backdrop show: the banner only until a decision, never under the dialog.
function renderState() {
  if (!shadow) return;
  if (banner) banner.hidden = !!(state || dialog);
  backdrop.hidden = !dialog && !(bannerModal && !banner.hidden);
}

function cookieTable(cookies) {
  var row = (tag, values) => h("tr", {}, values.map((value) => h(tag, {text: value})));
  return h("details", {}, [
    h("summary", {text: t("label.cookies") + " (" + cookies.length + ")"}),
    h("table", {}, [row("th", ["name", "vendor", "purpose", "lifetime"].map((key) => t("label." + key)))].concat(cookies.map((c) => row("td", [c.name, c.vendor, c.purpose, c.lifetime == "session" ? t("label.session") : c.lifetime]))))
  ]);
}

// A switch: a real checkbox with role="switch" inside its <label>; test hooks only on the ones a visitor can change.
function toggle(hook, id, on, required, label) {
  var box = h("input", {type: "checkbox", role: "switch", ["data-cg-" + hook]: !required && id});
  box.checked = required || on;
  box.disabled = required;
  return [h("label", {class: "row"}, label.concat(box)), box];
}

function categoryBlock(cat, chosen) {
  var required = !!cat.required;
  var [catRow, box] = toggle("category", cat.id, chosen.categories[cat.id], required, [h("b", {text: categoryTitle(cat.id)}), required && " " + t("label.always_on")]);
  var serviceBoxes = [];
  var services = (cat.services || []).map((svc) => {
    var [svcRow, svcBox] = toggle("service", svc.id, chosen.services[svc.id], required, [svc.name || svc.id]);
    serviceBoxes.push(svcBox);
    return h("div", {}, [svcRow, paragraph(svc.description)]);
  });
  // Switching a category switches its services along; each can then be changed on its own.
  box.onchange = () => serviceBoxes.forEach((svcBox) => {
    svcBox.checked = box.checked;
  });
  return h("section", {class: "category"}, [catRow, paragraph(t("category." + cat.id + ".description"))].concat(services, cat.cookies && cat.cookies[0] && cookieTable(cat.cookies)));
}

function saveChoices() {
  var chosen = {categories: {}, services: {}};
  dialog.querySelectorAll("input:enabled").forEach((box) => {
    var data = box.dataset;
    chosen[data.cgCategory ? "categories" : "services"][data.cgCategory || data.cgService] = box.checked;
  });
  var values = Object.values(chosen.categories).concat(Object.values(chosen.services));
  decide(chosen, values.every(Boolean) ? "accept_all" : values.some(Boolean) ? "custom" : gpc ? "gpc" : "reject_all");
}

function showDialog() {
  var chosen = choices();
  var close = button("close", "close", "×", closeDialog);
  if (!config || dialog) return;
  mount();
  returnFocus = shadow.activeElement || document.activeElement;
  close.setAttribute("aria-label", t("button.close"));
  dialog = shadow.appendChild(h("div", {class: "dialog", role: "dialog", "aria-modal": true, "aria-labelledby": "cg-title", "data-cg": "dialog", lang: config.lang}, [
    h("div", {class: "row"}, [h("h2", {id: "cg-title", text: t("dialog.title")}), close]),
    paragraph(t("dialog.description"))
  ].concat(categories().map((cat) => categoryBlock(cat, chosen)), [
    choiceButtons(button("btn alt", "save", t("button.save"), saveChoices)),
    linkTo(config.endpoints.privacy + (currentToken() ? "#token=" + currentToken() : ""), "link.privacy_center")
  ])));
  renderState();
  close.focus();
}

// Closing records nothing; focus goes back where it was.
function closeDialog() {
  if (!dialog) return;
  dialog.remove();
  dialog = null;
  renderState();
  returnFocus.focus();
}

// Escape closes the dialog; Tab and Shift+Tab stay inside the dialog (or the modal banner).
function onKey(event) {
  var box = dialog || (bannerModal && !banner.hidden && banner);
  var items = box && focusables(box);
  var current = shadow.activeElement;
  if (!box) return;
  if (event.key == "Escape" && dialog) closeDialog();
  if (event.key == "Tab" && (current == items[event.shiftKey ? 0 : items.length - 1] || !box.contains(current))) {
    event.preventDefault();
    items[event.shiftKey ? items.length - 1 : 0].focus();
  }
}
