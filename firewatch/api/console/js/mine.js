// A unit's fire-safety manager on a phone: their unit's alerts, live (the API filters the
// list and the stream to their unit), and the hazards they must rectify before a deadline.
import { h, replace } from "./dom.js";
import { label, t } from "./i18n.js";
import { api, PATHS } from "./api.js";
import { ACTIVE_STATES, day, severityRank } from "./format.js";
import { unitName } from "./registry.js";
import { errorBox, loading, section, severityBadge, since, stateBadge } from "./ui.js";

function alertCard(a) {
  return h(
    "article",
    { class: ["card", `sev-${a.severity}`], "data-alert-id": a.id, "data-state": a.state },
    h(
      "header",
      null,
      severityBadge(a.severity),
      h("strong", { class: "card-title" }, label("type", a.type)),
      stateBadge(a.state),
    ),
    h("p", null, a.explanation),
    h("p", { class: "muted" }, a.device_id, " · ", since(a.first_seen, a)),
  );
}

function hazardCard(z) {
  return h(
    "article",
    { class: ["card", z.overdue ? "problem" : ""], "data-hazard-id": z.id },
    h(
      "header",
      null,
      h("span", { class: "badge" }, label("hazard_severity", z.severity)),
      h("strong", { class: "card-title" }, label("hazard_category", z.category)),
      h("span", { class: "badge" }, label("hazard_state", z.state)),
    ),
    h("p", null, z.description),
    h(
      "p",
      { class: z.overdue ? "bad" : "muted" },
      t("hazard.due", { day: day(z.deadline) }),
      z.overdue ? ` · ${t("hazard.overdue")}` : "",
    ),
  );
}

export function render(root, ctx) {
  const { me, store } = ctx;
  const alerts = h("div", { class: "cards", id: "my-alerts" });
  const hazards = h("div", { class: "cards" }, loading());
  replace(
    root,
    h(
      "div",
      { class: "page field-page" },
      h("h1", null, me.unit_id ? unitName(me.unit_id) : t("nav.mine")),
      me.unit_id
        ? h(
            "p",
            null,
            h("a", { href: `#/unit/${encodeURIComponent(me.unit_id)}` }, t("mine.unit_card")),
          )
        : null,
      section(t("mine.alerts"), alerts),
      section(t("mine.hazards"), hazards),
    ),
  );

  function draw() {
    const mineNow = store
      .all()
      .filter((a) => ACTIVE_STATES.has(a.state))
      .sort(
        (a, b) =>
          severityRank(a.severity) - severityRank(b.severity) ||
          Date.parse(b.first_seen) - Date.parse(a.first_seen),
      );
    replace(
      alerts,
      mineNow.length
        ? mineNow.map(alertCard)
        : h(
            "p",
            { class: "muted" },
            store.status === "live" ? t("mine.no_alerts") : t("common.loading"),
          ),
    );
  }

  api(PATHS.hazards, { query: { state: ["open", "submitted"] } })
    .then((rows) =>
      replace(
        hazards,
        rows.length ? rows.map(hazardCard) : h("p", { class: "muted" }, t("mine.no_hazards")),
      ),
    )
    .catch((err) => replace(hazards, errorBox(err, me)));

  const unsubscribe = store.subscribe(draw);
  draw();
  return unsubscribe;
}
