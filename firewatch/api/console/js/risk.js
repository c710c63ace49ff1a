// The supervisors' risk board: how a region's units spread over the four levels, its
// highest-risk units, and the warnings (a unit's level rose), newest first.
import { h, replace } from "./dom.js";
import { label, t } from "./i18n.js";
import { api, PATHS } from "./api.js";
import { number, when } from "./format.js";
import { allDistricts, loadRegistry, theCity } from "./registry.js";
import { errorBox, loading, riskBadge, section, table } from "./ui.js";

const LEVELS = ["red", "orange", "yellow", "blue", "unscored"];

function distribution(totals) {
  const sum = LEVELS.reduce((a, l) => a + (totals[l] || 0), 0) || 1;
  return h(
    "div",
    { class: "levels" },
    h(
      "div",
      { class: "level-bar", role: "img", "aria-label": t("risk.distribution") },
      LEVELS.map((l) => {
        const seg = h("span", {
          class: ["seg", `risk-${l}`],
          title: `${label("risk", l)} ${totals[l] || 0}`,
        });
        seg.style.flexGrow = String(totals[l] || 0); // CSSOM, allowed by the page's CSP
        return seg;
      }),
    ),
    h(
      "div",
      { class: "level-legend" },
      LEVELS.map((l) =>
        h(
          "span",
          { class: "legend-item" },
          riskBadge(l),
          ` ${totals[l] || 0} (${Math.round(((totals[l] || 0) * 100) / sum)}%)`,
        ),
      ),
    ),
  );
}

export function render(root, ctx) {
  const { me } = ctx;
  const controls = h("div", { class: "controls" });
  const dist = h("div", null, loading());
  const top = h("div", null, loading());
  const warnings = h("div", null, loading());
  replace(
    root,
    h(
      "div",
      { class: "page risk-page" },
      h("h1", null, t("nav.risk")),
      controls,
      h(
        "div",
        { class: "grid-2" },
        section(t("risk.distribution"), dist),
        section(t("risk.top"), top),
      ),
      section(t("risk.warnings"), warnings),
    ),
  );

  let region = sessionStorage.getItem("firewatch.risk.region") || "";

  async function load() {
    if (!region) {
      replace(dist, h("p", { class: "muted" }, t("risk.no_region")));
      replace(top);
    } else {
      api(PATHS.riskRegion(region))
        .then((r) => replace(dist, distribution(r.totals || {})))
        .catch((err) => replace(dist, errorBox(err, me)));
      api(PATHS.riskTop(region), { query: { limit: 20 } })
        .then((rows) =>
          replace(
            top,
            table(
              [
                { head: t("risk.level"), cell: (u) => riskBadge(u.level) },
                { head: t("risk.score"), cell: (u) => number(u.score), class: "num" },
                {
                  head: t("alert.unit"),
                  cell: (u) => h("a", { href: `#/unit/${encodeURIComponent(u.unit_id)}` }, u.name),
                },
                {
                  head: t("risk.forced_by"),
                  cell: (u) => u.forced_by.map((f) => label("forced", f)).join(", ") || "—",
                },
              ],
              rows,
            ),
          ),
        )
        .catch((err) => replace(top, errorBox(err, me)));
    }
    api(PATHS.riskWarnings, { query: { region: region || undefined, limit: 50 } })
      .then((rows) =>
        replace(
          warnings,
          table(
            [
              { head: t("alert.at"), cell: (w) => when(w.raised_at) },
              {
                head: t("alert.unit"),
                cell: (w) =>
                  h("a", { href: `#/unit/${encodeURIComponent(w.unit_id)}` }, w.unit_name),
              },
              {
                head: t("risk.change"),
                cell: (w) => [
                  w.from_level ? riskBadge(w.from_level) : "—",
                  " → ",
                  riskBadge(w.to_level),
                ],
              },
              { head: t("risk.reason"), cell: (w) => w.reason },
            ],
            rows,
          ),
        ),
      )
      .catch((err) => replace(warnings, errorBox(err, me)));
  }

  void loadRegistry(me).then(() => {
    const city = theCity();
    if (!region && city) region = city.id;
    const options = [...(city ? [city] : []), ...allDistricts()];
    replace(
      controls,
      options.length
        ? h(
            "label",
            null,
            t("risk.region"),
            " ",
            h(
              "select",
              {
                id: "risk-region",
                onchange: (e) => {
                  region = e.target.value;
                  sessionStorage.setItem("firewatch.risk.region", region);
                  void load();
                },
              },
              options.map((o) => h("option", { value: o.id, selected: o.id === region }, o.name)),
            ),
          )
        : null,
    );
    return load();
  });
}
