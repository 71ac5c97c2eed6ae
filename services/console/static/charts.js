// Small SVG charts drawn by the console itself: a line over time, bands of a category over time,
// and bars. Each answers "no data" in words rather than an empty box.
import { svgEl, el } from "./common.js";

const W = 480, H = 180, L = 40, R = 10, T = 10, B = 24;

function frame(points, label) {
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label });
  svg.append(svgEl("rect", { x: L, y: T, width: W - L - R, height: H - T - B, fill: "#fff", stroke: "#d8dde4" }));
  return svg;
}

function timeAxis(svg, t0, t1) {
  for (let i = 0; i <= 4; i++) {
    const t = t0 + ((t1 - t0) * i) / 4;
    const x = L + ((W - L - R) * i) / 4;
    const d = new Date(t);
    const text = `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
    svg.append(svgEl("text", { x, y: H - 6, "font-size": 11, "text-anchor": "middle", fill: "#5b6675" }, text));
  }
}

function noData(container, message) {
  container.replaceChildren(el("p", { class: "empty" }, message));
}

// points: [{t: Date ms, v: number|null}]
export function lineChart(container, points, { label, max = null, unit = "", colour = "#1f5fbf" }) {
  const values = points.filter((p) => p.v !== null && p.v !== undefined);
  if (!values.length) return noData(container, `No ${label.toLowerCase()} data in this period.`);
  const t0 = points[0].t, t1 = Math.max(points[points.length - 1].t, t0 + 1000);
  const top = max ?? Math.max(1, ...values.map((p) => p.v)) * 1.1;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  const svg = frame(points, label);
  for (const f of [0, 0.5, 1]) {
    svg.append(svgEl("line", { x1: L, x2: W - R, y1: y(top * f), y2: y(top * f), stroke: "#eef1f5" }));
    svg.append(svgEl("text", { x: L - 4, y: y(top * f) + 4, "font-size": 11, "text-anchor": "end", fill: "#5b6675" }, `${Math.round(top * f)}${unit}`));
  }
  svg.append(svgEl("polyline", { points: values.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" "), fill: "none", stroke: colour, "stroke-width": 2, class: "series" }));
  for (const p of values) svg.append(svgEl("circle", { cx: x(p.t), cy: y(p.v), r: 2.5, fill: colour }, svgEl("title", {}, `${new Date(p.t).toLocaleTimeString()}: ${p.v.toFixed(1)}${unit}`)));
  timeAxis(svg, t0, t1);
  container.replaceChildren(svg);
}

const CATEGORY_COLOURS = ["#2e9e4f", "#1f5fbf", "#e67e22", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d"];

// points: [{t, v: string|null}]: one coloured band per bucket, a legend below.
export function bandChart(container, points, { label, step }) {
  const values = points.filter((p) => p.v);
  if (!values.length) return noData(container, `No ${label.toLowerCase()} data in this period.`);
  const names = [...new Set(values.map((p) => p.v))];
  const t0 = points[0].t, t1 = Math.max(points[points.length - 1].t + step, t0 + 1000);
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const svg = frame(points, label);
  for (const p of values) {
    const colour = CATEGORY_COLOURS[names.indexOf(p.v) % CATEGORY_COLOURS.length];
    svg.append(svgEl("rect", { x: x(p.t), y: T + 10, width: Math.max(1, x(p.t + step) - x(p.t)), height: H - T - B - 20, fill: colour, class: "series" }, svgEl("title", {}, `${new Date(p.t).toLocaleTimeString()}: ${p.v}`)));
  }
  timeAxis(svg, t0, t1);
  const legend = el("div", {}, names.map((n, i) => el("span", { class: "legend-item" }, el("span", { class: "swatch", "data-colour": CATEGORY_COLOURS[i % CATEGORY_COLOURS.length] }), n)));
  legend.querySelectorAll(".swatch").forEach((s) => { s.style.background = s.dataset.colour; });
  container.replaceChildren(svg, legend);
}

export function barChart(container, points, { label, step, colour = "#8e44ad" }) {
  const values = points.filter((p) => p.v !== null && p.v !== undefined);
  if (!values.length) return noData(container, `No ${label.toLowerCase()} in this period.`);
  const t0 = points[0].t, t1 = Math.max(points[points.length - 1].t + step, t0 + 1000);
  const top = Math.max(1, ...values.map((p) => p.v)) * 1.1;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  const svg = frame(points, label);
  svg.append(svgEl("text", { x: L - 4, y: T + 10, "font-size": 11, "text-anchor": "end", fill: "#5b6675" }, `${Math.round(top)}`));
  for (const p of values) {
    svg.append(svgEl("rect", { x: x(p.t), y: y(p.v), width: Math.max(1, x(p.t + step) - x(p.t) - 1), height: H - B - y(p.v), fill: colour, class: "series" }, svgEl("title", {}, `${new Date(p.t).toLocaleTimeString()}: ${p.v}`)));
  }
  timeAxis(svg, t0, t1);
  container.replaceChildren(svg);
}
