// Times, durations and the rules the queue shows by: severity order, what counts as
// untriaged, and how late an alert is against its acknowledgement timeout.
import { currentLang, t } from "./i18n.js";

export const SEVERITIES = ["critical", "high", "medium", "low"]; // firewatch/core/domain.py

export function severityRank(severity) {
  const i = SEVERITIES.indexOf(severity);
  return i < 0 ? SEVERITIES.length : i;
}

// firewatch/core/alerts.py: ACTIVE_STATES, and the two states an operator still has to decide.
export const ACTIVE_STATES = new Set(["open", "acknowledged", "confirmed_fire", "confirmed_fault"]);
export const UNTRIAGED = new Set(["open", "acknowledged"]);

// The lifecycle's operator actions by the state they start from (core/alerts.py TRANSITIONS),
// to offer only the buttons that can succeed. The server still decides: a 409 is shown.
export const ACTIONS_FROM = {
  open: ["acknowledge", "confirm_fire", "mark_false_alarm", "confirm_fault", "resolve"],
  acknowledged: ["confirm_fire", "mark_false_alarm", "confirm_fault", "resolve"],
  confirmed_fire: ["resolve"],
  confirmed_fault: ["resolve"],
  resolved: ["close"],
  false_alarm: ["close"],
};

// Used when /console/config.json cannot be read: FIREWATCH_ALERT_ACK_TIMEOUT_S's defaults.
export const DEFAULT_ACK_TIMEOUT_S = { critical: 60, high: 300, medium: 900, low: 3600 };
let ackTimeouts = DEFAULT_ACK_TIMEOUT_S;

/** The server's timeouts (GET /console/config.json), read once at start. */
export function setAckTimeouts(timeouts) {
  if (timeouts && typeof timeouts === "object")
    ackTimeouts = { ...DEFAULT_ACK_TIMEOUT_S, ...timeouts };
}

/**
 * How late an open alert is against its acknowledgement timeout (the server's
 * FIREWATCH_ALERT_ACK_TIMEOUT_S by severity, after which alerting escalates it;
 * docs/domain.md): "ok" in the first half, "warn" in the second, "late" once escalation is
 * due. An acknowledged alert is "acked" (someone is on it); a decided one is "done".
 */
export function lateness(alert, nowMs = Date.now()) {
  if (alert.state === "acknowledged") return "acked";
  if (alert.state !== "open") return "done";
  const limit = ackTimeouts[alert.severity];
  if (!limit) return "ok";
  const elapsed = (nowMs - Date.parse(alert.first_seen)) / 1000;
  if (elapsed >= limit) return "late";
  return elapsed >= limit / 2 ? "warn" : "ok";
}

function pad(n) {
  return String(n).padStart(2, "0");
}

/** Seconds as m:ss, h:mm:ss or "3d 04:05:06": readable from across a room. */
export function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const days = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  const clock = hh || days ? `${hh}:${pad(mm)}:${pad(ss)}` : `${mm}:${pad(ss)}`;
  return days ? `${t("time.days", { n: days })} ${clock}` : clock;
}

export function elapsedSince(iso, nowMs = Date.now()) {
  return duration((nowMs - Date.parse(iso)) / 1000);
}

function locale() {
  return currentLang() === "en" ? "en-GB" : "zh-CN";
}

/** A time as the viewer's clock shows it: today's as 14:03:07, older ones with the date. */
export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const today = new Date().toDateString() === d.toDateString();
  const opts = today
    ? { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false }
    : {
        year: "numeric",
        month: "2-digit",
        day: "2-digit",
        hour: "2-digit",
        minute: "2-digit",
        hour12: false,
      };
  return d.toLocaleString(locale(), opts);
}

export function day(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime())
    ? String(iso)
    : d.toLocaleDateString(locale(), { year: "numeric", month: "2-digit", day: "2-digit" });
}

export function number(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  return Number(value).toLocaleString(locale(), { maximumFractionDigits: digits });
}
