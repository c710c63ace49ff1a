// Duty checks (查岗) of a panel on the GB/T 26875.3 gateway, in the unit card: the center's
// seats ask for one (the API's duty_check; the gateway sends it and records the answer),
// and whoever reads the device sees its latest checks: asked when, by whom, the outcome.
import { h, replace } from "./dom.js";
import { label, t } from "./i18n.js";
import { api, PATHS } from "./api.js";
import { when } from "./format.js";
import { canDutyCheck } from "./roles.js";
import { banner, errorBox, errorText, table } from "./ui.js";

const SHOWN = 5; // the latest few: the full record is the API's

/** Whether the device can be asked for a duty check: a panel with a GB/T address. */
export function onGateway(device) {
  return device.kind === "panel" && Boolean(device.gbt_address);
}

function outcome(check) {
  // closed: what came back; open: where it is (waiting for the gateway, or for the answer)
  return check.outcome ? label("duty_outcome", check.outcome) : label("duty_state", check.state);
}

function asker(check) {
  return check.requested_by === "schedule" ? t("duty.schedule") : check.requested_by;
}

/** The panel's duty-check box: the button (for the roles that may ask) and the list. */
export function dutyChecks(device, ctx) {
  const { me } = ctx;
  const list = h("div", { class: "duty-list" });
  let busy = false;

  async function load() {
    try {
      const rows = await api(PATHS.dutyChecks(device.id), { query: { limit: SHOWN } });
      replace(
        list,
        table(
          [
            { head: t("duty.asked_at"), cell: (c) => when(c.requested_at) },
            { head: t("duty.by"), cell: asker },
            { head: t("duty.outcome"), cell: outcome },
            { head: t("duty.answered_at"), cell: (c) => when(c.answered_at) },
          ],
          rows,
          {
            empty: t("duty.none"),
            tableClass: "duty-table",
            rowClass: (c) => `duty-${c.outcome || c.state}`,
          },
        ),
      );
    } catch (err) {
      replace(list, errorBox(err, me));
    }
  }

  const button = canDutyCheck(me)
    ? h(
        "button",
        {
          type: "button",
          class: "duty-ask",
          "data-device-id": device.id,
          onclick: () => void ask(),
        },
        t("duty.request"),
      )
    : null;

  async function ask() {
    if (busy) return;
    busy = true;
    button.disabled = true;
    try {
      await api(PATHS.dutyChecks(device.id), { method: "POST" });
      banner(t("duty.requested", { device: device.id }), "ok");
    } catch (err) {
      banner(err.status === 409 ? t("duty.refused", { detail: err.detail }) : errorText(err, me));
    } finally {
      busy = false;
      button.disabled = false;
    }
    await load();
  }

  void load();
  return h(
    "div",
    { class: "duty-checks", "data-device-id": device.id },
    h("h4", null, t("duty.of", { device: device.id }), " ", button),
    list,
  );
}
