// One alert beside the queue: what it is, who holds it, the actions its state allows (only
// for the seat that claimed it, each with a note), the evidence and the audit trail, and
// the unit card (where it is, whom to call, its devices and their last 24 hours).
import { h, replace } from "./dom.js";
import { label, t } from "./i18n.js";
import { api, PATHS } from "./api.js";
import { ACTIONS_FROM, when } from "./format.js";
import { canAct, canTakeOver } from "./roles.js";
import { claim, mine, release } from "./claims.js";
import { renderUnitCard } from "./unit_card.js";
import { banner, errorBox, errorText, severityBadge, since, stateBadge, table } from "./ui.js";
import { unitName } from "./registry.js";

export function renderDetail(root, alertId, ctx) {
  const { store, me } = ctx;
  const head = h("div", { class: "detail-head" });
  const claimBar = h("div", { class: "claim-bar" });
  const note = h("textarea", {
    id: "action-note",
    rows: 2,
    maxlength: 4000,
    placeholder: t("action.note_placeholder"),
    "aria-label": t("action.note"),
  });
  const buttons = h("div", { class: "action-buttons" });
  const actions = h(
    "div",
    { class: "actions" },
    h("label", { for: "action-note" }, t("action.note")),
    note,
    buttons,
  );
  const history = h("div", { class: "history" });
  const unitBox = h("div", { class: "unit-box" });
  replace(
    root,
    h(
      "article",
      { class: "detail", "data-alert-id": alertId },
      head,
      claimBar,
      actions,
      history,
      unitBox,
    ),
  );

  let alert = store.get(alertId) || null;
  let busy = false;
  let unitShown = null;
  let cancelled = false;

  async function act(action) {
    if (busy) return;
    busy = true;
    drawActions();
    try {
      const updated = await api(PATHS.actions(alertId), {
        method: "POST",
        body: { action, note: note.value.trim() },
      });
      note.value = "";
      store.upsert(updated);
      store.emit({ kind: "event", event: action, alert: updated });
      banner(t("action.done", { action: label("action", action) }), "ok");
    } catch (err) {
      banner(err.status === 409 ? t("action.refused", { detail: err.detail }) : errorText(err, me));
    } finally {
      busy = false;
      drawActions();
    }
  }

  function drawHead() {
    if (!alert) {
      replace(head, h("p", { class: "muted" }, t("common.loading")));
      return;
    }
    replace(
      head,
      h(
        "div",
        { class: "title-line" },
        severityBadge(alert.severity),
        h(
          "h2",
          null,
          label("type", alert.type),
          " ",
          h("span", { class: "muted" }, `#${alert.id}`),
        ),
        stateBadge(alert.state),
      ),
      h("p", { class: "explanation" }, alert.explanation),
      h(
        "dl",
        { class: "facts" },
        h("dt", null, t("alert.unit")),
        h(
          "dd",
          null,
          h("a", { href: `#/unit/${encodeURIComponent(alert.unit_id)}` }, unitName(alert.unit_id)),
        ),
        h("dt", null, t("alert.device")),
        h("dd", null, alert.device_id),
        h("dt", null, t("alert.first_seen")),
        h("dd", null, when(alert.first_seen), " · ", since(alert.first_seen, alert)),
        h("dt", null, t("alert.last_seen")),
        h("dd", null, when(alert.last_seen)),
        h("dt", null, t("alert.occurrences")),
        h("dd", null, String(alert.occurrences)),
        h("dt", null, t("alert.escalation")),
        h("dd", null, String(alert.escalation_level)),
      ),
    );
  }

  function drawClaim() {
    if (!alert) return replace(claimBar);
    const parts = [];
    if (alert.claimed_by && mine(alert, me)) {
      parts.push(
        h("span", { class: "claim mine" }, t("claim.mine_since", { at: when(alert.claimed_at) })),
      );
      parts.push(
        h(
          "button",
          { type: "button", onclick: () => release(store, me, alert) },
          t("claim.release"),
        ),
      );
    } else if (alert.claimed_by) {
      parts.push(
        h(
          "span",
          { class: "claim other" },
          t("claim.by_since", { who: alert.claimed_by, at: when(alert.claimed_at) }),
        ),
      );
      if (canTakeOver(me)) {
        parts.push(
          h(
            "button",
            {
              type: "button",
              class: "warn",
              onclick: () => claim(store, me, alert, { force: true }),
            },
            t("claim.take_over"),
          ),
        );
      }
    } else if (canAct(me)) {
      parts.push(h("span", { class: "claim none" }, t("claim.unclaimed")));
      parts.push(
        h(
          "button",
          { type: "button", class: "primary", onclick: () => claim(store, me, alert) },
          t("claim.claim"),
        ),
      );
    } else {
      parts.push(h("span", { class: "claim none" }, t("claim.unclaimed")));
    }
    replace(claimBar, parts);
  }

  function drawActions() {
    actions.hidden = !canAct(me) || !alert;
    if (!alert) return;
    const holding = mine(alert, me);
    const possible = ACTIONS_FROM[alert.state] || [];
    replace(
      buttons,
      possible.length
        ? possible.map((a) =>
            h(
              "button",
              {
                type: "button",
                class: ["action", `action-${a}`],
                "data-action": a,
                disabled: !holding || busy,
                title: holding ? null : t("action.claim_first"),
                onclick: () => act(a),
              },
              label("action", a),
            ),
          )
        : h("span", { class: "muted" }, t("action.none")),
      holding ? null : h("p", { class: "muted hint" }, t("action.claim_first")),
    );
  }

  async function loadHistory() {
    try {
      const detail = await api(PATHS.alert(alertId));
      if (cancelled) return;
      if (store.upsert(detail.alert)) alert = store.get(alertId);
      alert = alert || detail.alert;
      drawAll();
      replace(
        history,
        h("h3", null, t("alert.evidence")),
        table(
          [
            { head: t("alert.kind"), cell: (e) => label("type", e.kind) },
            { head: t("alert.severity"), cell: (e) => severityBadge(e.severity) },
            { head: t("alert.detected_at"), cell: (e) => when(e.detected_at) },
            { head: t("alert.explanation"), cell: (e) => e.explanation },
          ],
          detail.evidence,
        ),
        h("h3", null, t("alert.trail")),
        table(
          [
            { head: t("alert.at"), cell: (r) => when(r.at) },
            { head: t("alert.action"), cell: (r) => label("action", r.action) },
            { head: t("alert.state"), cell: (r) => label("state", r.to_state) },
            { head: t("alert.actor"), cell: (r) => r.actor },
            { head: t("action.note"), cell: (r) => r.note },
          ],
          detail.transitions,
        ),
      );
    } catch (err) {
      if (!cancelled) replace(history, errorBox(err, me));
    }
  }

  function drawAll() {
    drawHead();
    drawClaim();
    drawActions();
    if (alert && unitShown !== alert.unit_id) {
      unitShown = alert.unit_id;
      renderUnitCard(unitBox, alert.unit_id, ctx, { compact: true });
    }
  }

  drawAll();
  void loadHistory();
  return {
    update(change) {
      alert = store.get(alertId) || change.alert;
      drawAll();
      // The trail gained a row (an action, a claim): read it again, once per event.
      void loadHistory();
    },
    destroy() {
      cancelled = true;
    },
  };
}
