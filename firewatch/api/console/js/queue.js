// The alert queue: every active alert, live from the stream, most urgent first; claim one
// to work it (two seats never work the same alert), then act on it in the detail beside the
// list. A new fire alarm sounds (sound.js) and flashes.
import { h, replace } from "./dom.js";
import { label, t } from "./i18n.js";
import { ACTIVE_STATES, severityRank, SEVERITIES, UNTRIAGED } from "./format.js";
import { unitName } from "./registry.js";
import { canAct } from "./roles.js";
import { claim, mine, release } from "./claims.js";
import { renderDetail } from "./alert_detail.js";
import { severityBadge, since, stateBadge } from "./ui.js";

const FILTERS = ["all", "unclaimed", "mine"];
const FINISHED_MINE = new Set(["resolved", "false_alarm"]);

/** What the queue lists: active alerts, and finished ones I still hold (to close them). */
export function queued(store, me) {
  return store
    .all()
    .filter((a) => ACTIVE_STATES.has(a.state) || (FINISHED_MINE.has(a.state) && mine(a, me)))
    .sort(
      (a, b) =>
        Number(!UNTRIAGED.has(a.state)) - Number(!UNTRIAGED.has(b.state)) ||
        severityRank(a.severity) - severityRank(b.severity) ||
        Date.parse(b.first_seen) - Date.parse(a.first_seen) ||
        b.id - a.id,
    );
}

function claimCell(alert, ctx) {
  const { me, store } = ctx;
  if (alert.claimed_by && mine(alert, me)) {
    return h(
      "span",
      { class: "claim mine" },
      h("span", { class: "claim-text" }, t("claim.mine")),
      h(
        "button",
        {
          type: "button",
          class: "small",
          onclick: (e) => {
            e.stopPropagation(); // the row's own click would open the alert
            void release(store, me, alert);
          },
        },
        t("claim.release"),
      ),
    );
  }
  if (alert.claimed_by) {
    return h("span", { class: "claim other" }, t("claim.by", { who: alert.claimed_by }));
  }
  if (!canAct(me) || !ACTIVE_STATES.has(alert.state)) return h("span", { class: "claim none" }, "");
  return h(
    "span",
    { class: "claim none" },
    h(
      "button",
      {
        type: "button",
        class: "small primary",
        onclick: (e) => {
          e.stopPropagation(); // the row's own click would open the alert
          void claim(store, me, alert);
        },
      },
      t("claim.claim"),
    ),
  );
}

// Fire alarms that arrived while the queue was open flash for a while (sound: main.js).
const FLASH_MS = 15000;
const flashing = new Map(); // alert id -> until (ms)

export function alertRow(alert, ctx, selectedId) {
  const flash = (flashing.get(alert.id) || 0) > Date.now();
  return h(
    "li",
    {
      class: [
        "alert-row",
        `sev-${alert.severity}`,
        alert.id === selectedId ? "selected" : "",
        alert.category === "fire" ? "fire" : "",
        flash ? "flash" : "",
      ],
      "data-alert-id": alert.id,
      "data-state": alert.state,
      "data-claimed-by": alert.claimed_by || "",
      tabindex: 0,
      onclick: () => (location.hash = `#/queue/${alert.id}`),
      onkeydown: (e) => {
        if (e.key === "Enter") location.hash = `#/queue/${alert.id}`;
      },
    },
    h(
      "div",
      { class: "row-main" },
      severityBadge(alert.severity),
      h("strong", { class: "type" }, label("type", alert.type)),
      alert.occurrences > 1 ? h("span", { class: "count" }, `×${alert.occurrences}`) : null,
      h("span", { class: "unit" }, unitName(alert.unit_id)),
    ),
    h(
      "div",
      { class: "row-sub" },
      stateBadge(alert.state),
      h("span", { class: "device" }, alert.device_id),
      since(alert.first_seen, alert),
      claimCell(alert, ctx),
    ),
  );
}

function counts(alerts) {
  const by = Object.fromEntries(SEVERITIES.map((s) => [s, 0]));
  for (const a of alerts)
    if (ACTIVE_STATES.has(a.state)) by[a.severity] = (by[a.severity] || 0) + 1;
  return h(
    "div",
    { class: "counts" },
    SEVERITIES.map((s) =>
      h("span", { class: ["count-chip", `sev-${s}`] }, `${label("severity", s)} ${by[s]}`),
    ),
  );
}

export function render(root, ctx, params) {
  const { store, me } = ctx;
  const selectedId = params[0] ? Number(params[0]) : null;
  let filter = sessionStorage.getItem("firewatch.queue.filter") || "all";
  const head = h("div", { class: "queue-head" });
  const list = h("ul", { class: "alert-list", "aria-live": "polite", id: "queue-list" });
  const side = h("div", { class: "detail-pane" });
  replace(
    root,
    h("div", { class: "queue-layout" }, h("section", { class: "queue-pane" }, head, list), side),
  );

  function draw() {
    const all = queued(store, me);
    const shown = all.filter((a) =>
      filter === "mine" ? mine(a, me) : filter === "unclaimed" ? !a.claimed_by : true,
    );
    replace(
      head,
      h("h1", null, t("queue.title")),
      counts(all),
      h(
        "div",
        { class: "filters", role: "group" },
        FILTERS.map((f) =>
          h(
            "button",
            {
              type: "button",
              class: ["chip", f === filter ? "on" : ""],
              "aria-pressed": String(f === filter),
              onclick: () => {
                filter = f;
                sessionStorage.setItem("firewatch.queue.filter", f);
                draw();
              },
            },
            t(`queue.filter.${f}`),
          ),
        ),
      ),
    );
    replace(
      list,
      shown.length
        ? shown.map((a) => alertRow(a, ctx, selectedId))
        : h(
            "li",
            { class: "empty" },
            store.status === "live" ? t("queue.empty") : t("common.loading"),
          ),
    );
  }

  const timers = [];
  const detail = selectedId ? renderDetail(side, selectedId, ctx) : null;
  if (!selectedId) replace(side, h("p", { class: "muted hint" }, t("queue.pick")));

  const unsubscribe = store.subscribe((change) => {
    if (change.kind === "event" && change.event === "created" && change.alert.category === "fire") {
      flashing.set(change.alert.id, Date.now() + FLASH_MS);
      timers.push(setTimeout(draw, FLASH_MS + 50)); // stop the flash even if nothing else changes
    }
    draw();
    if (detail && change.alert && change.alert.id === selectedId) detail.update(change);
  });
  draw();
  return () => {
    unsubscribe();
    timers.forEach(clearTimeout);
    if (detail) detail.destroy();
  };
}
