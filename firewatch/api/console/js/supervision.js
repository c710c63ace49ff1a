// Supervision for the fire department: the "double random" draws, inspections and their
// hazards (work orders with deadlines), and the units' credit. Read-only: writes are the
// CLI's until the API takes them (docs/supervision.md).
import { h, replace } from "./dom.js";
import { label, t } from "./i18n.js";
import { api, PATHS } from "./api.js";
import { day, when } from "./format.js";
import { unitName, loadRegistry } from "./registry.js";
import { errorBox, loading, table } from "./ui.js";

const TABS = ["draws", "inspections", "hazards", "credit"];

export function hazardTable(rows) {
  return table(
    [
      {
        head: t("alert.unit"),
        cell: (z) =>
          h("a", { href: `#/unit/${encodeURIComponent(z.unit_id)}` }, unitName(z.unit_id)),
      },
      { head: t("hazard.category"), cell: (z) => label("hazard_category", z.category) },
      { head: t("hazard.severity"), cell: (z) => label("hazard_severity", z.severity) },
      { head: t("hazard.description"), cell: (z) => z.description },
      {
        head: t("hazard.deadline"),
        cell: (z) =>
          h(
            "span",
            { class: z.overdue ? "bad" : "" },
            day(z.deadline),
            z.overdue ? ` · ${t("hazard.overdue")}` : "",
          ),
      },
      { head: t("hazard.state"), cell: (z) => label("hazard_state", z.state) },
    ],
    rows,
    { rowClass: (z) => (z.overdue ? "problem" : "") },
  );
}

export function inspectionTable(rows) {
  return table(
    [
      { head: t("inspection.at"), cell: (i) => when(i.inspected_at) },
      {
        head: t("alert.unit"),
        cell: (i) =>
          h("a", { href: `#/unit/${encodeURIComponent(i.unit.id)}` }, i.unit.name || i.unit.id),
      },
      { head: t("inspection.outcome"), cell: (i) => label("outcome", i.outcome) },
      { head: t("inspection.hazards"), cell: (i) => String(i.hazards.length), class: "num" },
      { head: t("inspection.inspectors"), cell: (i) => i.inspectors.join(", ") },
    ],
    rows,
  );
}

const LOADERS = {
  draws: () =>
    api(PATHS.draws).then((rows) =>
      table(
        [
          { head: "#", cell: (d) => String(d.id), class: "num" },
          { head: t("draw.period"), cell: (d) => d.period },
          { head: t("draw.status"), cell: (d) => label("draw_status", d.status) },
          { head: t("draw.committed_at"), cell: (d) => when(d.committed_at) },
          { head: t("draw.published_at"), cell: (d) => when(d.published_at) },
          {
            head: t("draw.drawn"),
            cell: (d) => (d.drawn === null ? "—" : String(d.drawn)),
            class: "num",
          },
          { head: t("draw.inputs_hash"), cell: (d) => h("code", null, d.inputs_hash.slice(0, 12)) },
        ],
        rows,
      ),
    ),
  inspections: () => api(PATHS.inspections).then(inspectionTable),
  hazards: () => api(PATHS.hazards).then(hazardTable),
  credit: () =>
    api(PATHS.credit).then((rows) =>
      table(
        [
          {
            head: t("alert.unit"),
            cell: (c) =>
              h("a", { href: `#/unit/${encodeURIComponent(c.unit_id)}` }, unitName(c.unit_id)),
          },
          {
            head: t("credit.status"),
            cell: (c) =>
              h("span", { class: ["badge", `credit-${c.status}`] }, label("credit", c.status)),
          },
          { head: t("credit.since"), cell: (c) => when(c.since) },
          { head: t("credit.reason"), cell: (c) => c.reason },
        ],
        rows,
      ),
    ),
};

export function render(root, ctx, params) {
  const { me } = ctx;
  const tab = TABS.includes(params[0]) ? params[0] : "draws";
  const body = h("div", null, loading());
  replace(
    root,
    h(
      "div",
      { class: "page supervision-page" },
      h("h1", null, t("nav.supervision")),
      h(
        "nav",
        { class: "tabs" },
        TABS.map((x) =>
          h(
            "a",
            {
              href: `#/supervision/${x}`,
              class: ["chip", x === tab ? "on" : ""],
              "aria-current": x === tab ? "page" : null,
            },
            t(`supervision.${x}`),
          ),
        ),
      ),
      body,
    ),
  );
  void loadRegistry(me)
    .then(() => LOADERS[tab]())
    .then((node) => replace(body, node))
    .catch((err) => replace(body, errorBox(err, me)));
}
