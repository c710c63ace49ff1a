// The unit card: where the unit is, whom to call, its devices with their state, the duty
// checks of its GB/T panels, and their last 24 hours as small charts. Each part loads on its own, so a part the role may not read
// (or a slow one) does not hide the others.
import { h, replace } from "./dom.js";
import { label, t } from "./i18n.js";
import { api, PATHS } from "./api.js";
import { number, when } from "./format.js";
import { lineChart } from "./charts.js";
import { errorBox, loading, section, table } from "./ui.js";
import { stateBadges } from "./devices.js";
import { districtName } from "./registry.js";
import { dutyChecks, onGateway } from "./duty_checks.js";

function contact(c) {
  if (!c || (!c.name && !c.phone)) return "—";
  return h(
    "span",
    null,
    c.name || "",
    " ",
    c.phone ? h("a", { href: `tel:${c.phone}`, class: "phone" }, c.phone) : "",
  );
}

function coords(unit) {
  if (unit.latitude === null || unit.latitude === undefined) return "—";
  return `${number(unit.latitude, 5)}, ${number(unit.longitude, 5)}`;
}

function deviceState(d) {
  return d ? stateBadges(d) : h("span", { class: "muted" }, "—");
}

export function renderUnitCard(root, unitId, ctx, { compact = false } = {}) {
  const { me } = ctx;
  const about = h("div", { class: "unit-about" }, loading());
  const devices = h("div", { class: "unit-devices" });
  const duty = h("div", { class: "unit-duty" });
  const charts = h("div", { class: "unit-charts" });
  replace(
    root,
    h(
      "section",
      { class: ["unit-card", compact ? "compact" : ""], "data-unit-id": unitId },
      about,
      devices,
      duty,
      charts,
    ),
  );

  let unit = null;
  let health = new Map();

  function drawDevices() {
    if (!unit) return;
    replace(
      devices,
      h("h3", null, t("unit.devices")),
      table(
        [
          { head: t("device.id"), cell: (d) => d.id },
          { head: t("device.kind"), cell: (d) => label("kind", d.kind) },
          { head: t("device.vendor"), cell: (d) => [d.vendor, d.model ? ` ${d.model}` : ""] },
          { head: t("device.state"), cell: (d) => deviceState(health.get(d.id)) },
          { head: t("device.last_seen"), cell: (d) => when((health.get(d.id) || {}).last_seen) },
        ],
        unit.devices || [],
      ),
    );
  }

  (async () => {
    try {
      unit = await api(PATHS.unit(unitId));
    } catch (err) {
      replace(about, errorBox(err, me));
      return;
    }
    replace(
      about,
      h("h2", null, unit.name, " ", h("span", { class: "muted" }, unit.id)),
      h(
        "dl",
        { class: "facts" },
        h("dt", null, t("unit.address")),
        h("dd", null, unit.address || "—"),
        h("dt", null, t("unit.district")),
        h("dd", null, unit.district ? districtName(unit.district) : "—"),
        h("dt", null, t("unit.category")),
        h("dd", null, label("category", unit.category)),
        h("dt", null, t("unit.building")),
        h("dd", null, label("building", unit.building_class), " · ", label("unit_type", unit.type)),
        h("dt", null, t("unit.coordinates")),
        h("dd", null, coords(unit)),
        h("dt", null, t("unit.responsible")),
        h("dd", null, contact(unit.responsible)),
        h("dt", null, t("unit.maintenance")),
        h("dd", null, contact(unit.maintenance)),
      ),
    );
    drawDevices();
    // Once per card (not per redraw of the table): each box loads its own list.
    const panels = (unit.devices || []).filter(onGateway);
    if (panels.length) {
      replace(
        duty,
        h("h3", null, t("duty.title")),
        panels.map((d) => dutyChecks(d, ctx)),
      );
    }
  })();

  api(PATHS.deviceHealth, { query: { unit_id: unitId } })
    .then((rows) => {
      health = new Map(rows.map((r) => [r.device_id, r]));
      drawDevices();
    })
    .catch(() => {
      // the state column stays "—"; the unit and its charts still show
    });

  replace(charts, h("h3", null, t("unit.telemetry")), loading());
  api(PATHS.telemetry(unitId), { query: { hours: 24 } })
    .then((body) => {
      const series = (body && body.series) || [];
      replace(
        charts,
        h("h3", null, t("unit.telemetry")),
        series.length
          ? h(
              "div",
              { class: "chart-grid" },
              series.map((sr) =>
                h(
                  "figure",
                  { class: "chart-box" },
                  h("figcaption", null, `${sr.device_id} · ${label("metric", sr.metric)}`),
                  lineChart(sr.points || [], {
                    unit: sr.unit || "",
                    title: `${sr.device_id} ${sr.metric}`,
                  }),
                ),
              ),
            )
          : h("p", { class: "muted" }, t("unit.no_telemetry")),
      );
    })
    .catch((err) => replace(charts, h("h3", null, t("unit.telemetry")), errorBox(err, me)));
}

/** The unit card as a page of its own (#/unit/ID): from the map or an alert. */
export function render(root, ctx, params) {
  const unitId = decodeURIComponent(params[0] || "");
  const box = h("div", { class: "page unit-page" });
  replace(root, box);
  renderUnitCard(box, unitId, ctx);
  if (ctx.store && ctx.store.status !== "idle") {
    const open = ctx.store.all().filter((a) => a.unit_id === unitId);
    if (open.length) {
      box.append(
        section(
          t("unit.open_alerts"),
          h(
            "ul",
            { class: "plain" },
            open.map((a) =>
              h(
                "li",
                null,
                h(
                  "a",
                  { href: `#/queue/${a.id}` },
                  `#${a.id} ${label("type", a.type)} · ${label("state", a.state)}`,
                ),
              ),
            ),
          ),
        ),
      );
    }
  }
}
