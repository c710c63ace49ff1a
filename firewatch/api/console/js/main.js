// The console's entry: who is logged in (GET /auth/me), the navigation for their role, the
// live alert stream, and the views by the URL's hash (#/queue/12, #/unit/U-WD-001 ...).
import { h, replace } from "./dom.js";
import { currentLang, label, onLangChange, setLang, t, translateStatic } from "./i18n.js";
import { api, onSessionEnded, PATHS } from "./api.js";
import { AlertStore } from "./alerts.js";
import { DEFAULT_ACK_TIMEOUT_S, elapsedSince, lateness, setAckTimeouts } from "./format.js";
import { homeOf, readsAlerts, canAct, viewsFor } from "./roles.js";
import { loadRegistry, resetRegistry } from "./registry.js";
import { renderLogin } from "./login.js";
import { errorBox } from "./ui.js";
import { beep, onSoundChange, state as soundState, toggle as toggleSound } from "./sound.js";
import * as queue from "./queue.js";
import * as map from "./map.js";
import * as devices from "./devices.js";
import * as risk from "./risk.js";
import * as supervision from "./supervision.js";
import * as myday from "./myday.js";
import * as mine from "./mine.js";
import * as unitCard from "./unit_card.js";

const VIEWS = { queue, map, devices, risk, supervision, myday, mine, unit: unitCard };
const STREAM_VIEWS = new Set(["queue", "mine"]);

const view = document.getElementById("view");
const nav = document.getElementById("nav");
const live = document.getElementById("live");
const who = document.getElementById("who");
const logoutButton = document.getElementById("logout");
const soundButton = document.getElementById("sound");
const langButton = document.getElementById("lang");

const ctx = {
  me: null,
  config: { ack_timeout_s: DEFAULT_ACK_TIMEOUT_S, version: "" },
  store: new AlertStore(),
};
let cleanup = null;

function route() {
  if (!ctx.me) return;
  const parts = (location.hash.replace(/^#\/?/, "") || homeOf(ctx.me.role)).split("/");
  const name = parts[0] in VIEWS ? parts[0] : homeOf(ctx.me.role);
  if (cleanup) cleanup();
  cleanup = null;
  for (const a of nav.querySelectorAll("a")) {
    a.classList.toggle("on", a.dataset.view === name);
    if (a.dataset.view === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.body.dataset.view = name;
  if (STREAM_VIEWS.has(name) && !readsAlerts(ctx.me)) {
    // These pages live on the alert stream, which this role does not get: say so here,
    // as the API says it for the pages it serves.
    replace(view, errorBox({ status: 403, detail: "alerts_read" }, ctx.me));
    return;
  }
  cleanup = VIEWS[name].render(view, ctx, parts.slice(1)) || null;
  tick();
}

function drawHeader() {
  const me = ctx.me;
  langButton.textContent = currentLang() === "zh-CN" ? "English" : "中文";
  langButton.lang = currentLang() === "zh-CN" ? "en" : "zh-CN";
  translateStatic();
  document.title = t("app.title");
  if (!me) {
    replace(nav);
    who.hidden = logoutButton.hidden = soundButton.hidden = live.hidden = true;
    return;
  }
  replace(
    nav,
    viewsFor(me.role).map((v) => h("a", { href: `#/${v.id}`, "data-view": v.id }, t(v.label))),
  );
  who.hidden = false;
  replace(
    who,
    me.display_name || me.username,
    " · ",
    h("span", { class: "role" }, label("role", me.role)),
  );
  logoutButton.hidden = false;
  soundButton.hidden = !canAct(me);
  drawSound();
  drawLive();
}

function drawSound() {
  const st = soundState();
  soundButton.textContent = t(`sound.${st}`);
  soundButton.classList.toggle("on", st === "on");
  soundButton.classList.toggle("blocked", st === "blocked");
}

function drawLive() {
  const st = ctx.store.status;
  live.hidden = st === "idle";
  live.textContent = t(`live.${st}`);
  live.className = `live ${st}`;
}

/** Every [data-since] shows the time since its moment; an alert's also its lateness. */
function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll("[data-since]")) {
    el.textContent = elapsedSince(el.dataset.since, now);
    const id = el.dataset.alertId;
    const alert = id ? ctx.store.get(id) : null;
    if (alert) el.dataset.late = lateness(alert, now);
  }
}

/** The view named by the hash if this role is offered it (or the unit card), else none. */
function offeredView(me) {
  const name = location.hash.replace(/^#\/?/, "").split("/")[0];
  return name === "unit" || viewsFor(me.role).some((v) => v.id === name) ? name : null;
}

async function start(me) {
  ctx.me = me;
  drawHeader();
  if (readsAlerts(me)) {
    ctx.store.start();
  }
  // Names for the lists first (two small reads), so that no view redraws when they arrive.
  await loadRegistry(me);
  if (ctx.me !== me) return; // logged out meanwhile
  // A hash left by someone else's session (another role) leads to this role's home.
  if (!offeredView(me)) location.hash = `#/${homeOf(me.role)}`;
  else route();
}

function showLogin(notice) {
  if (cleanup) cleanup();
  cleanup = null;
  ctx.store.stop();
  resetRegistry();
  ctx.me = null;
  drawHeader();
  document.body.dataset.view = "login";
  renderLogin(view, { onLoggedIn: (me) => void start(me), notice });
}

ctx.store.subscribe((change) => {
  if (change.kind === "status") drawLive();
  // A new fire alarm sounds wherever the operator is in the console.
  if (
    change.kind === "event" &&
    change.event === "created" &&
    change.alert.category === "fire" &&
    ctx.me &&
    canAct(ctx.me)
  ) {
    beep(3);
  }
});

onSessionEnded(() => {
  if (ctx.me) showLogin(t("login.ended"));
});

logoutButton.addEventListener("click", async () => {
  try {
    await api(PATHS.logout, { method: "POST" });
  } catch {
    // ended already: the login page is what follows either way
  }
  showLogin();
});
soundButton.addEventListener("click", () => void toggleSound());
onSoundChange(drawSound);
langButton.addEventListener("click", () => setLang(currentLang() === "zh-CN" ? "en" : "zh-CN"));
onLangChange(() => {
  drawHeader();
  if (ctx.me) route();
  else showLogin();
});
window.addEventListener("hashchange", route);
setInterval(tick, 1000);

(async () => {
  drawHeader();
  try {
    ctx.config = { ...ctx.config, ...(await api(PATHS.config)) };
  } catch {
    // the defaults above
  }
  setAckTimeouts(ctx.config.ack_timeout_s);
  document.body.dataset.version = ctx.config.version || "";
  let me = null;
  try {
    me = await api(PATHS.me);
  } catch {
    me = null; // 401: not logged in (or the session ended)
  }
  if (me) await start(me);
  else showLogin();
})();
