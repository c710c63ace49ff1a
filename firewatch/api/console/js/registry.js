// Names of units and districts for the lists (an alert carries only its unit's id). Read
// once per login; a role that may not read the registry (a vendor, a unit's manager) simply
// sees ids, except its own unit's name, which it may read.
import { api, PATHS } from "./api.js";

let units = new Map(); // unit id -> {id, name, street, ...}
let districtOfStreet = new Map(); // street id -> {id, name} of its district
let districts = []; // [{id, name}]
let city = null; // {id, name}
let loading = null;

function walk(node, district) {
  if (node.level === "district") {
    districts.push({ id: node.id, name: node.name });
    district = { id: node.id, name: node.name };
  }
  if (node.level === "street" && district) districtOfStreet.set(node.id, district);
  for (const child of node.children || []) walk(child, district);
}

/** Read the registry (once; later calls share the first read). */
export function loadRegistry(me) {
  if (loading) return loading;
  loading = (async () => {
    const [unitList, tree] = await Promise.all([
      api(PATHS.units, { query: { limit: 1000 } }).catch(() => []),
      api(PATHS.regions).catch(() => []),
    ]);
    units = new Map(unitList.map((u) => [u.id, u]));
    for (const root of tree) {
      if (root.level === "city" && !city) city = { id: root.id, name: root.name };
      walk(root, null);
    }
    if (me && me.unit_id && !units.has(me.unit_id)) {
      const own = await api(PATHS.unit(me.unit_id)).catch(() => null);
      if (own) units.set(own.id, own);
    }
  })();
  return loading;
}

export function resetRegistry() {
  units = new Map();
  districtOfStreet = new Map();
  districts = [];
  city = null;
  loading = null;
}

export function unitName(id) {
  const unit = units.get(id);
  return unit ? unit.name : id;
}

export function unitOf(id) {
  return units.get(id) || null;
}

export function districtOfUnit(id) {
  const unit = units.get(id);
  return (unit && (districtOfStreet.get(unit.street) || null)) || null;
}

export function districtName(id) {
  const found = districts.find((d) => d.id === id);
  return found ? found.name : id;
}

export function allDistricts() {
  return districts;
}

export function theCity() {
  return city;
}
