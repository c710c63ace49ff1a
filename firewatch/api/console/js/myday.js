// An inspector's day on a phone: the inspections the API gives them (it filters to the
// inspector), as cards big enough to tap, each with its unit and its hazards' deadlines.
import { h, replace } from "./dom.js";
import { label, t } from "./i18n.js";
import { api, PATHS } from "./api.js";
import { day, when } from "./format.js";
import { errorBox, loading } from "./ui.js";

function card(i) {
  return h(
    "article",
    { class: "card", "data-inspection-id": i.id },
    h(
      "header",
      null,
      h(
        "a",
        { class: "card-title", href: `#/unit/${encodeURIComponent(i.unit.id)}` },
        i.unit.name || i.unit.id,
      ),
      h("span", { class: ["badge", `outcome-${i.outcome}`] }, label("outcome", i.outcome)),
    ),
    h(
      "p",
      { class: "muted" },
      when(i.inspected_at),
      i.draw_id ? ` · ${t("inspection.draw", { id: i.draw_id })}` : "",
    ),
    i.hazards.length
      ? h(
          "ul",
          { class: "plain hazards" },
          i.hazards.map((z) =>
            h(
              "li",
              null,
              h("span", { class: "badge" }, label("hazard_severity", z.severity)),
              " ",
              label("hazard_category", z.category),
              " · ",
              t("hazard.due", { day: day(z.deadline) }),
              " · ",
              label("hazard_state", z.state),
            ),
          ),
        )
      : h("p", { class: "muted" }, t("inspection.no_hazards")),
    i.notes ? h("p", { class: "notes" }, i.notes) : null,
  );
}

export function render(root, ctx) {
  const list = h("div", { class: "cards" }, loading());
  replace(root, h("div", { class: "page field-page" }, h("h1", null, t("nav.myday")), list));
  // The inspector's code is their username (docs/console.md).
  api(PATHS.inspections, { query: { inspector: ctx.me.username, limit: 100 } })
    .then((rows) =>
      replace(list, rows.length ? rows.map(card) : h("p", { class: "muted" }, t("myday.none"))),
    )
    .catch((err) => replace(list, errorBox(err, ctx.me)));
}
