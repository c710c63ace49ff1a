// What each role sees (issue 12): the navigation and the first page after login. The API
// decides what a role may read or do (firewatch/core/access.py); this only decides what is
// offered, so a page opened by URL that the role may not use shows the API's 403 plainly.

const CENTER = ["operator", "shift_leader", "admin"];

export const VIEWS = [
  { id: "queue", label: "nav.queue", roles: CENTER },
  { id: "map", label: "nav.map", roles: [...CENTER, "supervisor"] },
  { id: "devices", label: "nav.devices", roles: [...CENTER, "vendor"] },
  { id: "risk", label: "nav.risk", roles: ["supervisor", "admin"] },
  { id: "supervision", label: "nav.supervision", roles: ["supervisor", "admin"] },
  { id: "myday", label: "nav.myday", roles: ["inspector"] },
  { id: "mine", label: "nav.mine", roles: ["unit"] },
];

const HOME = {
  operator: "queue",
  shift_leader: "queue",
  admin: "queue",
  supervisor: "risk",
  inspector: "myday",
  unit: "mine",
  vendor: "devices",
};

export function viewsFor(role) {
  return VIEWS.filter((v) => v.roles.includes(role));
}

export function homeOf(role) {
  return HOME[role] || "queue";
}

/** Works the alert queue: claims and acts (the API's alerts_act). */
export function canAct(me) {
  return CENTER.includes(me.role);
}

/** Asks a GB/T panel for a duty check, 查岗 (the API's duty_check). */
export function canDutyCheck(me) {
  return CENTER.includes(me.role);
}

/** May take over another seat's claim (the API's alerts_take_over). */
export function canTakeOver(me) {
  return me.role === "shift_leader" || me.role === "admin";
}

/** Gets the live alert stream (the API's alerts_read). */
export function readsAlerts(me) {
  return [...CENTER, "supervisor", "unit"].includes(me.role);
}
