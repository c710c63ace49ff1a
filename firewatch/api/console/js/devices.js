// Device health: every device the role may see (a vendor: its own) with whether it is
// online, when it was last heard, its open faults and isolations; grouped by district and
// unit with counts, problems first, so a wall screen shows where to look.
import { h, replace } from "./dom.js";
import { label, t } from "./i18n.js";
import { api, PATHS } from "./api.js";
import { when } from "./format.js";
import { allDistricts, loadRegistry } from "./registry.js";
import { errorBox, loading, table } from "./ui.js";

// status is the device's last status message (or last will): online, offline, or null
// before the first; an open offline alert counts as offline too.
export function isOnline(r) {
  return r.status === "online" && !r.offline_alerts;
}

function tally(rows) {
  return {
    total: rows.length,
    offline: rows.filter((r) => !isOnline(r)).length,
    faults: rows.filter((r) => r.open_faults > 0).length,
    isolated: rows.filter((r) => r.isolated > 0).length,
  };
}

function tallyLine(c) {
  return h(
    "span",
    { class: "tally" },
    h("span", null, t("devices.total", { n: c.total })),
    h("span", { class: c.offline ? "bad" : "ok" }, t("devices.offline_n", { n: c.offline })),
    h("span", { class: c.faults ? "warn" : "ok" }, t("devices.faults_n", { n: c.faults })),
    h("span", { class: c.isolated ? "warn" : "ok" }, t("devices.isolated_n", { n: c.isolated })),
  );
}

export function stateBadges(r) {
  return h(
    "span",
    { class: "device-state" },
    h(
      "span",
      { class: ["badge", isOnline(r) ? "ok" : "bad"] },
      isOnline(r) ? t("device.online") : r.status ? t("device.offline") : t("device.unknown"),
    ),
    r.open_faults
      ? h("span", { class: "badge warn" }, t("device.faults", { n: r.open_faults }))
      : null,
    r.isolated ? h("span", { class: "badge warn" }, t("device.isolated")) : null,
  );
}

function problem(r) {
  return !isOnline(r) || r.open_faults > 0 || r.isolated > 0;
}

export function render(root, ctx) {
  const { me } = ctx;
  let region = sessionStorage.getItem("firewatch.devices.region") || "";
  let onlyProblems = sessionStorage.getItem("firewatch.devices.problems") === "1";
  const controls = h("div", { class: "controls" });
  const body = h("div", { class: "devices-body" }, loading());
  replace(
    root,
    h("div", { class: "page devices-page" }, h("h1", null, t("nav.devices")), controls, body),
  );

  function drawControls() {
    const districts = allDistricts();
    replace(
      controls,
      districts.length
        ? h(
            "label",
            null,
            t("devices.district"),
            " ",
            h(
              "select",
              {
                id: "devices-region",
                onchange: (e) => {
                  region = e.target.value;
                  sessionStorage.setItem("firewatch.devices.region", region);
                  void load();
                },
              },
              h("option", { value: "" }, t("common.all")),
              districts.map((d) => h("option", { value: d.id, selected: d.id === region }, d.name)),
            ),
          )
        : null,
      h(
        "label",
        { class: "check" },
        h("input", {
          type: "checkbox",
          checked: onlyProblems,
          onchange: (e) => {
            onlyProblems = e.target.checked;
            sessionStorage.setItem("firewatch.devices.problems", onlyProblems ? "1" : "0");
            void load();
          },
        }),
        " ",
        t("devices.only_problems"),
      ),
    );
  }

  async function load() {
    let rows;
    try {
      rows = await api(PATHS.deviceHealth, {
        query: { region, problems: onlyProblems || undefined },
      });
    } catch (err) {
      replace(body, errorBox(err, me));
      return;
    }
    const names = new Map(allDistricts().map((d) => [d.id, d.name]));
    // district -> unit -> devices
    const groups = new Map();
    for (const r of rows) {
      const key = r.district_id || "";
      const d = key ? { id: key, name: names.get(key) || key } : null;
      if (!groups.has(key)) groups.set(key, { district: d, units: new Map() });
      const units = groups.get(key).units;
      if (!units.has(r.unit_id)) units.set(r.unit_id, []);
      units.get(r.unit_id).push(r);
    }
    // Districts with devices offline or faulty first: where to look is at the top.
    const trouble = (g) => [...g.units.values()].flat().filter(problem).length;
    const sortedGroups = [...groups.values()].sort(
      (a, b) =>
        trouble(b) - trouble(a) ||
        (a.district ? a.district.name : "~").localeCompare(b.district ? b.district.name : "~"),
    );
    replace(
      body,
      h("p", { class: "summary" }, tallyLine(tally(rows))),
      sortedGroups.length
        ? sortedGroups.map((g) => {
            const all = [...g.units.values()].flat();
            const units = [...g.units.entries()].sort(
              (a, b) =>
                b[1].filter(problem).length - a[1].filter(problem).length ||
                a[0].localeCompare(b[0]),
            );
            return h(
              "section",
              { class: "panel district", "data-district": g.district ? g.district.id : "" },
              h(
                "h2",
                null,
                g.district ? g.district.name : t("devices.no_district"),
                " ",
                tallyLine(tally(all)),
              ),
              units.map(([unitId, devs]) =>
                h(
                  "div",
                  { class: "unit-group", "data-unit-id": unitId },
                  h(
                    "h3",
                    null,
                    h(
                      "a",
                      { href: `#/unit/${encodeURIComponent(unitId)}` },
                      devs[0].unit_name || unitId,
                    ),
                    " ",
                    tallyLine(tally(devs)),
                  ),
                  table(
                    [
                      { head: t("device.id"), cell: (r) => r.device_id },
                      { head: t("device.kind"), cell: (r) => label("kind", r.kind) },
                      {
                        head: t("device.vendor"),
                        cell: (r) => [r.vendor, r.model ? ` ${r.model}` : ""],
                      },
                      { head: t("device.state"), cell: stateBadges },
                      { head: t("device.last_seen"), cell: (r) => when(r.last_seen) },
                      {
                        head: t("device.open_faults"),
                        cell: (r) => String(r.open_faults),
                        class: "num",
                      },
                      {
                        head: t("device.isolated"),
                        cell: (r) => (r.isolated ? String(r.isolated) : "—"),
                        class: "num",
                      },
                    ],
                    devs.sort(
                      (a, b) =>
                        Number(isOnline(a)) - Number(isOnline(b)) ||
                        a.device_id.localeCompare(b.device_id),
                    ),
                    { rowClass: (r) => (problem(r) ? "problem" : ""), tableClass: "devices-table" },
                  ),
                ),
              ),
            );
          })
        : h("p", { class: "muted" }, t("devices.none")),
    );
  }

  void loadRegistry(me).then(() => {
    drawControls();
    return load();
  });
}
