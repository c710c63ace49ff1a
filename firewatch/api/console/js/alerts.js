// The alerts the console knows, kept current by the live stream (GET /alerts/stream, SSE)
// without polling: the list is read once when the stream is open, then every event carries
// the alert as it is after the change. Each event replaces the alert it names unless the
// copy held is newer (by updated_at), so the list and the stream may arrive in any order.
import { api, PATHS } from "./api.js";
import { ACTIVE_STATES } from "./format.js";

// Event names of the stream (firewatch/storage/alerts.py and alert_claims.py).
export const EVENTS = [
  "created",
  "occurrence",
  "updated",
  "acknowledge",
  "confirm_fire",
  "mark_false_alarm",
  "confirm_fault",
  "resolve",
  "close",
  "escalate",
  "merge",
  "claim",
  "release",
];

const RECONNECT_MS = 3000;

export class AlertStore {
  constructor() {
    this.alerts = new Map(); // id -> alert
    this.status = "idle"; // idle | connecting | live | reconnecting
    this.listeners = new Set();
    this.source = null;
    this.retry = null;
    this.stopped = true;
  }

  /** fn({kind: "event"|"list"|"status", event, alert}) after every change. */
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(change) {
    for (const fn of this.listeners) {
      try {
        fn(change);
      } catch (err) {
        console.error("alert listener failed", err);
      }
    }
  }

  setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this.emit({ kind: "status" });
  }

  /** Keep `alert` unless a newer copy is held; true when it was taken. */
  upsert(alert) {
    const held = this.alerts.get(alert.id);
    if (held && Date.parse(held.updated_at) > Date.parse(alert.updated_at)) return false;
    this.alerts.set(alert.id, alert);
    return true;
  }

  get(id) {
    return this.alerts.get(Number(id));
  }

  all() {
    return [...this.alerts.values()];
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retry);
    if (this.source) this.source.close();
    this.source = null;
    this.alerts.clear();
    this.setStatus("idle");
  }

  connect() {
    if (this.stopped) return;
    this.setStatus(this.status === "idle" ? "connecting" : "reconnecting");
    // since=now: only changes from here on; the list read on open covers what came before.
    const source = new EventSource(`${PATHS.alertStream}?since=now`);
    this.source = source;
    source.onopen = () => {
      this.setStatus("live");
      // Read (again) on every open: after a reconnect the browser resumes from its
      // Last-Event-ID, but a new EventSource (after an error closed the old one) does not.
      void this.loadList();
    };
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        // The server refused the stream (an ended session, 403, 503): the browser will not
        // retry by itself. Asking who we are tells main.js if the session ended.
        this.setStatus("reconnecting");
        source.close();
        void api(PATHS.me).catch(() => {});
        clearTimeout(this.retry);
        this.retry = setTimeout(() => this.connect(), RECONNECT_MS);
      } else {
        this.setStatus("reconnecting"); // the browser reconnects with Last-Event-ID
      }
    };
    for (const name of EVENTS) {
      source.addEventListener(name, (message) => this.onEvent(name, message));
    }
  }

  onEvent(name, message) {
    let payload;
    try {
      payload = JSON.parse(message.data);
    } catch {
      return; // not ours to show
    }
    const alert = payload && payload.alert;
    if (!alert || typeof alert.id !== "number") return;
    const fresh = !this.alerts.has(alert.id);
    if (!this.upsert(alert)) return;
    this.emit({ kind: "event", event: name, alert, fresh });
    // A wall screen runs for weeks: forget alerts nobody works on any more (views that
    // still show one keep their own copy until they are left).
    // (A resolved alert someone holds stays: its holder still has to close it.)
    const over = alert.state === "closed" || alert.state === "merged";
    if (over || (!ACTIVE_STATES.has(alert.state) && !alert.claimed_by))
      this.alerts.delete(alert.id);
  }

  async loadList() {
    try {
      const list = await api(PATHS.alerts, { query: { limit: 1000 } });
      for (const alert of list) this.upsert(alert);
      this.emit({ kind: "list" });
    } catch (err) {
      this.emit({ kind: "error", error: err });
    }
  }
}
