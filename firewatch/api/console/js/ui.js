// Small pieces every view uses: badges, tables, the error box (a 403 says plainly that the
// role may not see this), and the banner for passing messages.
import { h } from "./dom.js";
import { label, t } from "./i18n.js";
import { elapsedSince, lateness } from "./format.js";

export function severityBadge(severity) {
  return h("span", { class: ["badge", `sev-${severity}`] }, label("severity", severity));
}

export function stateBadge(state) {
  return h(
    "span",
    { class: ["badge", "state", `state-${state}`], "data-state": state },
    label("state", state),
  );
}

export function riskBadge(level) {
  return h("span", { class: ["badge", `risk-${level || "none"}`] }, label("risk", level || "none"));
}

/** The message for a failed request, in the viewer's language. */
export function errorText(err, me) {
  if (!err) return "";
  if (err.status === 403) {
    const role = me ? label("role", me.role) : "";
    return `${t("error.forbidden", { role })} (${err.detail})`;
  }
  if (err.status === 401) return t("login.ended");
  if (err.status === 404) return t("error.not_found");
  if (err.status === 0) return t("error.network");
  if (err.status === 503) return t("error.unavailable");
  return err.detail || String(err.message || err);
}

export function errorBox(err, me) {
  return h(
    "div",
    { class: ["error", err && err.status === 403 ? "forbidden" : ""], role: "alert" },
    errorText(err, me),
  );
}

let bannerTimer = null;
/** A message across the top for a few seconds (a refused claim, a failed action). */
export function banner(text, kind = "warn") {
  const el = document.getElementById("banner");
  el.textContent = text;
  el.className = `banner ${kind}`;
  el.hidden = false;
  clearTimeout(bannerTimer);
  bannerTimer = setTimeout(() => {
    el.hidden = true;
  }, 8000);
}

/**
 * A table: columns are [{key, head, cell(row) -> node|string, class}] and rows any objects.
 * Empty rows show one line saying so.
 */
export function table(columns, rows, { empty = t("common.none"), rowClass, tableClass } = {}) {
  const head = h(
    "tr",
    null,
    columns.map((c) => h("th", { class: c.class, scope: "col" }, c.head)),
  );
  const body = rows.length
    ? rows.map((row) =>
        h(
          "tr",
          { class: rowClass ? rowClass(row) : null },
          columns.map((c) => h("td", { class: c.class }, c.cell ? c.cell(row) : row[c.key])),
        ),
      )
    : [h("tr", null, h("td", { colspan: columns.length, class: "empty" }, empty))];
  return h(
    "div",
    { class: "table-wrap" },
    h("table", { class: tableClass }, h("thead", null, head), h("tbody", null, body)),
  );
}

export function section(title, ...children) {
  return h("section", { class: "panel" }, h("h2", null, title), ...children);
}

export function loading() {
  return h("p", { class: "muted loading" }, t("common.loading"));
}

/**
 * A live "time since" (main.js ticks every [data-since] each second); for an alert also
 * how late it is (data-late: ok, warn, late, acked, done), which colours it.
 */
export function since(iso, alert) {
  return h(
    "span",
    {
      class: "since",
      "data-since": iso,
      "data-alert-id": alert ? alert.id : null,
      "data-late": alert ? lateness(alert) : null,
    },
    elapsedSince(iso),
  );
}
