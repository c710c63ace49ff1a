// Small line charts drawn as inline SVG by hand: no chart library, nothing to download.
import { s } from "./dom.js";
import { number } from "./format.js";

const W = 240;
const H = 64;
const PAD = 4;

/**
 * points: [[iso, value], ...] in time order. A null value breaks the line (a gap in the
 * data is shown as a gap, not bridged).
 */
export function lineChart(points, { unit = "", title = "" } = {}) {
  const data = points
    .map(([ts, v]) => [Date.parse(ts), v === null || v === undefined ? null : Number(v)])
    .filter(([x]) => !Number.isNaN(x));
  const values = data.map(([, v]) => v).filter((v) => v !== null && Number.isFinite(v));
  const svg = s("svg", {
    class: "chart",
    viewBox: `0 0 ${W} ${H + 14}`,
    role: "img",
    "aria-label": title,
    preserveAspectRatio: "none",
  });
  if (!values.length) {
    svg.append(
      s("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "chart-empty" }, "—"),
    );
    return svg;
  }
  const x0 = data[0][0];
  const x1 = data[data.length - 1][0];
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (hi === lo) {
    hi += 1;
    lo -= 1;
  }
  const x = (t) => PAD + ((t - x0) / Math.max(1, x1 - x0)) * (W - 2 * PAD);
  const y = (v) => PAD + (1 - (v - lo) / (hi - lo)) * (H - 2 * PAD);
  // One path with a move-to after every gap.
  let d = "";
  let pen = false;
  for (const [t, v] of data) {
    if (v === null || !Number.isFinite(v)) {
      pen = false;
      continue;
    }
    d += `${pen ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
    pen = true;
  }
  const last = values[values.length - 1];
  svg.append(
    s("title", null, title),
    s("line", { x1: PAD, x2: W - PAD, y1: H - PAD, y2: H - PAD, class: "chart-axis" }),
    s("path", { d, class: "chart-line", fill: "none" }),
    s("text", { x: PAD, y: H + 12, class: "chart-label" }, `${number(lo)}–${number(hi)} ${unit}`),
    s(
      "text",
      { x: W - PAD, y: H + 12, class: "chart-label chart-last", "text-anchor": "end" },
      `${number(last)} ${unit}`,
    ),
  );
  return svg;
}
