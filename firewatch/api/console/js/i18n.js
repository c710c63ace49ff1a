// Language: Chinese first (the monitoring center's language), English on request. The
// choice is kept in localStorage so a wall screen restarts in the language it had.
import zh from "../i18n/zh-CN.js";
import en from "../i18n/en.js";

const TABLES = { "zh-CN": zh, en };
const KEY = "firewatch.lang";
let lang = "zh-CN";
try {
  const saved = localStorage.getItem(KEY);
  if (saved && saved in TABLES) lang = saved;
} catch {
  // storage disabled (a locked-down browser profile): Chinese, every time
}

const listeners = new Set();

export function currentLang() {
  return lang;
}

export function setLang(next) {
  if (!(next in TABLES) || next === lang) return;
  lang = next;
  try {
    localStorage.setItem(KEY, next);
  } catch {
    // not remembered; still switched for this page
  }
  document.documentElement.lang = next;
  for (const fn of listeners) fn(next);
}

export function onLangChange(fn) {
  listeners.add(fn);
}

/**
 * The text of key in the current language, with {name} placeholders filled from params.
 * A key missing in English falls back to Chinese, then to the key itself, so a missing
 * translation shows up as readable text instead of "undefined".
 */
export function t(key, params) {
  const text = TABLES[lang][key] ?? TABLES["zh-CN"][key] ?? key;
  if (!params) return text;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

/** A label for an enum value from the API (severity, state, alert type, role...). */
export function label(kind, value) {
  if (value === null || value === undefined || value === "") return "—";
  const key = `${kind}.${value}`;
  const text = t(key);
  return text === key ? String(value) : text;
}

/** Re-translate the static parts of index.html (elements with data-i18n). */
export function translateStatic(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}

document.documentElement.lang = lang;
