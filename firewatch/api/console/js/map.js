// "One map": the districts' outlines and every unit as a dot, drawn as SVG from GET /map
// (no tile server: the console works offline). A dot's fill is its worst open alert, its
// ring its risk level; with the live stream running, the fills follow the alerts as they
// change. Clicking a unit opens its card.
import { h, replace, s } from "./dom.js";
import { label, t } from "./i18n.js";
import { api, PATHS } from "./api.js";
import { ACTIVE_STATES, severityRank, SEVERITIES } from "./format.js";
import { errorBox, loading } from "./ui.js";

const W = 1000;
const H = 700;
const PAD = 30;

/** Equirectangular projection fitted to the bounds; longitudes shrunk by cos(latitude). */
function projection(points) {
  const lons = points.map((p) => p[0]);
  const lats = points.map((p) => p[1]);
  const [lon0, lon1] = [Math.min(...lons), Math.max(...lons)];
  const [lat0, lat1] = [Math.min(...lats), Math.max(...lats)];
  const kx = Math.cos((((lat0 + lat1) / 2) * Math.PI) / 180);
  const spanX = Math.max((lon1 - lon0) * kx, 1e-6);
  const spanY = Math.max(lat1 - lat0, 1e-6);
  const scale = Math.min((W - 2 * PAD) / spanX, (H - 2 * PAD) / spanY);
  const offX = (W - spanX * scale) / 2;
  const offY = (H - spanY * scale) / 2;
  return ([lon, lat]) => [offX + (lon - lon0) * kx * scale, offY + (lat1 - lat) * scale];
}

function centroid(outline) {
  const n = outline.length;
  return [outline.reduce((a, p) => a + p[0], 0) / n, outline.reduce((a, p) => a + p[1], 0) / n];
}

/** Open alerts per unit from the stream's copy: {count, worst severity}. */
function liveCounts(store) {
  const by = new Map();
  for (const a of store.all()) {
    if (!ACTIVE_STATES.has(a.state)) continue;
    const cur = by.get(a.unit_id) || { open: 0, worst: null };
    cur.open += 1;
    if (cur.worst === null || severityRank(a.severity) < severityRank(cur.worst))
      cur.worst = a.severity;
    by.set(a.unit_id, cur);
  }
  return by;
}

function legend() {
  return h(
    "div",
    { class: "legend" },
    h("span", { class: "legend-title" }, t("map.fill")),
    SEVERITIES.map((sev) =>
      h(
        "span",
        { class: "legend-item" },
        h("i", { class: ["dot", `fill-${sev}`] }),
        label("severity", sev),
      ),
    ),
    h("span", { class: "legend-item" }, h("i", { class: "dot fill-calm" }), t("map.no_alerts")),
    h("span", { class: "legend-title" }, t("map.ring")),
    ["red", "orange", "yellow", "blue"].map((lvl) =>
      h(
        "span",
        { class: "legend-item" },
        h("i", { class: ["ring", `ring-${lvl}`] }),
        label("risk", lvl),
      ),
    ),
  );
}

export function render(root, ctx) {
  const { me, store } = ctx;
  const box = h("div", { class: "map-box" }, loading());
  const aside = h("aside", { class: "map-side" });
  replace(
    root,
    h(
      "div",
      { class: "page map-page" },
      h("h1", null, t("nav.map")),
      legend(),
      h("div", { class: "map-layout" }, box, aside),
    ),
  );

  let data = null;
  let dots = new Map(); // unit id -> circle

  function paint() {
    if (!data) return;
    const live = store && store.status !== "idle" ? liveCounts(store) : null;
    const rows = [];
    for (const unit of data.units) {
      const counted = live
        ? live.get(unit.id) || { open: 0, worst: null }
        : { open: unit.open_alerts, worst: unit.max_severity };
      const dot = dots.get(unit.id);
      if (dot)
        dot.setAttribute(
          "class",
          `unit-dot fill-${counted.open ? counted.worst : "calm"} ring-${unit.risk_level || "none"}`,
        );
      if (counted.open) rows.push([unit, counted]);
    }
    rows.sort(
      (a, b) => severityRank(a[1].worst) - severityRank(b[1].worst) || b[1].open - a[1].open,
    );
    replace(
      aside,
      h("h2", null, t("map.units_with_alerts")),
      rows.length
        ? h(
            "ul",
            { class: "plain" },
            rows.map(([u, c]) =>
              h(
                "li",
                null,
                h("i", { class: ["dot", `fill-${c.worst}`] }),
                " ",
                h("a", { href: `#/unit/${encodeURIComponent(u.id)}` }, u.name),
                ` · ${c.open}`,
              ),
            ),
          )
        : h("p", { class: "muted" }, t("map.none_open")),
      data.units.some((u) => u.latitude === null || u.latitude === undefined)
        ? h(
            "p",
            { class: "muted" },
            t("map.unplaced", { n: data.units.filter((u) => u.latitude == null).length }),
          )
        : null,
    );
  }

  (async () => {
    try {
      data = await api(PATHS.map);
    } catch (err) {
      replace(box, errorBox(err, me));
      return;
    }
    const regions = (data.regions || []).filter(
      (r) => Array.isArray(r.outline) && r.outline.length >= 3,
    );
    const placed = data.units.filter(
      (u) => u.latitude !== null && u.latitude !== undefined && u.longitude !== null,
    );
    const all = [
      ...regions.flatMap((r) => r.outline),
      ...placed.map((u) => [u.longitude, u.latitude]),
    ];
    if (!all.length) {
      replace(box, h("p", { class: "muted" }, t("map.nothing")));
      paint();
      return;
    }
    const project = projection(all);
    const svg = s("svg", {
      class: "map",
      viewBox: `0 0 ${W} ${H}`,
      role: "img",
      "aria-label": t("nav.map"),
    });
    for (const r of regions) {
      const pts = r.outline
        .map(project)
        .map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`)
        .join(" ");
      svg.append(
        s(
          "polygon",
          { points: pts, class: ["region", `level-${r.level}`] },
          s("title", null, r.name),
        ),
      );
    }
    // Names above their outline, not on it: a small district's dots would hide it.
    for (const r of regions) {
      const [x] = project(centroid(r.outline));
      const top = Math.min(...r.outline.map((p) => project(p)[1]));
      svg.append(
        s(
          "text",
          { x, y: Math.max(18, top - 10), class: "region-label", "text-anchor": "middle" },
          r.name,
        ),
      );
    }
    dots = new Map();
    for (const u of placed) {
      const [x, y] = project([u.longitude, u.latitude]);
      const go = () => (location.hash = `#/unit/${encodeURIComponent(u.id)}`);
      const dot = s(
        "circle",
        {
          cx: x.toFixed(1),
          cy: y.toFixed(1),
          r: 9,
          tabindex: 0,
          "data-unit-id": u.id,
          onclick: go,
          onkeydown: (e) => e.key === "Enter" && go(),
        },
        s("title", null, `${u.name} (${label("category", u.category)})`),
      );
      dots.set(u.id, dot);
      svg.append(dot);
    }
    replace(box, svg);
    paint();
  })();

  const unsubscribe = store ? store.subscribe(() => paint()) : () => {};
  return unsubscribe;
}
