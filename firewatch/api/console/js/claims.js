// Claiming: one seat works an alert at a time. The API answers a claim someone else holds
// with 409 and who holds it; a shift leader may take it over (force). Other seats learn of
// a claim from the stream's claim/release events, not from here.
import { api, PATHS } from "./api.js";
import { banner, errorText } from "./ui.js";
import { t } from "./i18n.js";

export async function claim(store, me, alert, { force = false } = {}) {
  try {
    const updated = await api(PATHS.claim(alert.id), {
      method: "POST",
      body: force ? { force: true } : {},
    });
    store.upsert(updated);
    store.emit({ kind: "event", event: "claim", alert: updated });
    return updated;
  } catch (err) {
    banner(err.status === 409 ? t("claim.refused", { detail: err.detail }) : errorText(err, me));
    return null;
  }
}

export async function release(store, me, alert, { force = false } = {}) {
  try {
    const updated = await api(PATHS.release(alert.id), {
      method: "POST",
      body: force ? { force: true } : {},
    });
    store.upsert(updated);
    store.emit({ kind: "event", event: "release", alert: updated });
    return updated;
  } catch (err) {
    banner(errorText(err, me));
    return null;
  }
}

export function mine(alert, me) {
  return Boolean(alert.claimed_by) && alert.claimed_by === me.username;
}
