// The HTTP API as the console uses it: same origin, the session cookie sent by the browser,
// and the CSRF token (the readable fw_csrf cookie) echoed in X-CSRF-Token on every request
// that changes something, as the API demands of session cookies (docs/people.md).

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** A refused or failed request: status (0: no answer at all) and the API's detail. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail || "";
  }
  get forbidden() {
    return this.status === 403;
  }
  get unauthenticated() {
    return this.status === 401;
  }
}

export function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return "";
}

// Whoever shows the login page listens for this (main.js); any view may hit an ended session.
const sessionEnded = new EventTarget();
export function onSessionEnded(fn) {
  sessionEnded.addEventListener("ended", fn);
}

function detailOf(body, status) {
  if (body && typeof body.detail === "string") return body.detail;
  // FastAPI's 422: a list of {loc, msg}
  if (body && Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
  return `HTTP ${status}`;
}

/**
 * Call the API: api("/alerts"), api("/alerts/1/claim", {method: "POST", body: {}}).
 * Resolves with the parsed JSON (null for 204); rejects with ApiError.
 */
export async function api(path, { method = "GET", body, query, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (UNSAFE.has(method)) headers["X-CSRF-Token"] = cookie("fw_csrf");
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v === null || v === undefined || v === "") continue;
      for (const one of [v].flat()) params.append(k, String(one));
    }
    const qs = params.toString();
    if (qs) url += `?${qs}`;
  }
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, String(err.message || err));
  }
  if (response.status === 204) return null;
  let parsed = null;
  const text = await response.text();
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = { detail: text.slice(0, 200) };
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, detailOf(parsed, response.status));
    // The login itself answers 401 for a wrong password: that is not an ended session.
    if (response.status === 401 && path !== "/auth/login") {
      sessionEnded.dispatchEvent(new Event("ended"));
    }
    throw error;
  }
  return parsed;
}

// Paths of the API the console reads, in one place so that a renamed route is one edit.
export const PATHS = {
  me: "/auth/me",
  login: "/auth/login",
  logout: "/auth/logout",
  config: "/console/config.json",
  alerts: "/alerts",
  alertStream: "/alerts/stream",
  alert: (id) => `/alerts/${encodeURIComponent(id)}`,
  claim: (id) => `/alerts/${encodeURIComponent(id)}/claim`,
  release: (id) => `/alerts/${encodeURIComponent(id)}/release`,
  actions: (id) => `/alerts/${encodeURIComponent(id)}/actions`,
  regions: "/regions",
  units: "/units",
  unit: (id) => `/units/${encodeURIComponent(id)}`,
  telemetry: (id) => `/units/${encodeURIComponent(id)}/telemetry`,
  deviceHealth: "/devices/health",
  map: "/map",
  riskWarnings: "/risk/warnings",
  riskTop: (region) => `/risk/regions/${encodeURIComponent(region)}/top`,
  riskRegion: (region) => `/risk/regions/${encodeURIComponent(region)}`,
  unitRisk: (id) => `/risk/units/${encodeURIComponent(id)}`,
  draws: "/draws",
  inspections: "/inspections",
  hazards: "/hazards",
  credit: "/credit",
  dutyChecks: (id) => `/devices/${encodeURIComponent(id)}/duty-checks`,
};
