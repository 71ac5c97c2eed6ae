// The fleet map, drawn by the console: edges at their GPS positions on a Web Mercator projection
// fitted to the fleet, with a graticule; no internet needed. With a tile-server URL
// (CONSOLE_TILE_URL, e.g. a LAN server's http://tiles.lan/{z}/{x}/{y}.png) its tiles go underneath.
import { svgEl, el } from "./common.js";

export const STATE_COLOURS = {
  online: "#2e9e4f", stale: "#8a94a3", degraded: "#c0392b",
  overloaded: "#e67e22", helped: "#8e44ad", focused: "#1f8fbf",
};
const W = 800, H = 500, PAD = 60;

// Web Mercator, in world units 0..1.
const mx = (lon) => (lon + 180) / 360;
const my = (lat) => {
  const r = (Math.max(-85, Math.min(85, lat)) * Math.PI) / 180;
  return (1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2;
};

function niceStep(span) {
  const steps = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 45];
  return steps.find((s) => span / s <= 6) ?? 90;
}

// The tile server's tiles under the frame (CONSOLE_TILE_URL).
function tiles(svg, tileUrl, { x0, x1, y0, y1, span, scale, px, py }) {
  const z = Math.max(0, Math.min(19, Math.floor(Math.log2((W / span) / 256))));
  const n = 2 ** z;
  const left = x0 - PAD / scale, right = x1 + PAD / scale, top = y0 - PAD / scale, bottom = y1 + PAD / scale;
  for (let tx = Math.floor(left * n); tx <= Math.floor(right * n); tx++) {
    for (let ty = Math.floor(top * n); ty <= Math.floor(bottom * n); ty++) {
      if (ty < 0 || ty >= n) continue;
      const href = tileUrl.replace("{z}", z).replace("{x}", ((tx % n) + n) % n).replace("{y}", ty);
      svg.append(svgEl("image", { href, x: px(tx / n), y: py(ty / n), width: scale / n, height: scale / n, preserveAspectRatio: "none" }));
    }
  }
}

const latOf = (y) => (Math.atan(Math.sinh(Math.PI * (1 - 2 * y))) * 180) / Math.PI;

// Graticule: meridians and parallels at a round step, labelled.
function graticule({ x0, x1, y0, y1, scale, px, py }) {
  const lonMin = (x0 - PAD / scale) * 360 - 180, lonMax = (x1 + PAD / scale) * 360 - 180;
  const step = niceStep(lonMax - lonMin);
  const grid = svgEl("g", { class: "graticule", stroke: "#c9d3de", "stroke-width": 1 });
  for (let lon = Math.ceil(lonMin / step) * step; lon <= lonMax; lon += step) {
    const x = px(mx(lon));
    grid.append(svgEl("line", { x1: x, x2: x, y1: 0, y2: H }));
    grid.append(svgEl("text", { x: x + 3, y: H - 4, "font-size": 11, fill: "#5b6675", stroke: "none" }, `${lon.toFixed(3)}°`));
  }
  const latTop = latOf(Math.max(0, y0 - PAD / scale)), latBottom = latOf(Math.min(1, y1 + PAD / scale));
  for (let lat = Math.ceil(latBottom / step) * step; lat <= latTop; lat += step) {
    const y = py(my(lat));
    grid.append(svgEl("line", { x1: 0, x2: W, y1: y, y2: y }));
    grid.append(svgEl("text", { x: 4, y: y - 3, "font-size": 11, fill: "#5b6675", stroke: "none" }, `${lat.toFixed(3)}°`));
  }
  return grid;
}

const hasGps = (e) => e.latitude !== null && e.longitude !== null && e.latitude !== undefined && e.longitude !== undefined;

export function drawMap(container, edges, { tileUrl = "" } = {}) {
  const placed = edges.filter(hasGps);
  if (!placed.length) {
    container.replaceChildren(el("p", { class: "empty" }, edges.length
      ? "No edge has a GPS position: set one on the Registry page to place it here."
      : "No edges to show."));
    return;
  }
  let x0 = Math.min(...placed.map((e) => mx(e.longitude))), x1 = Math.max(...placed.map((e) => mx(e.longitude)));
  let y0 = Math.min(...placed.map((e) => my(e.latitude))), y1 = Math.max(...placed.map((e) => my(e.latitude)));
  const minSpan = 0.00003; // about 1 km at the equator
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  let span = Math.max(x1 - x0, (y1 - y0) * (W - 2 * PAD) / (H - 2 * PAD), minSpan);
  x0 = cx - span / 2; x1 = cx + span / 2;
  const spanY = span * (H - 2 * PAD) / (W - 2 * PAD);
  y0 = cy - spanY / 2; y1 = cy + spanY / 2;
  const scale = (W - 2 * PAD) / span;
  const px = (x) => PAD + (x - x0) * scale;
  const py = (y) => PAD + (y - y0) * scale;
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, "aria-label": `${placed.length} edges on the map` });

  if (tileUrl) tiles(svg, tileUrl, { x0, x1, y0, y1, span, scale, px, py });
  svg.append(graticule({ x0, x1, y0, y1, scale, px, py }));

  for (const edge of placed) {
    const x = px(mx(edge.longitude)), y = py(my(edge.latitude));
    const colour = STATE_COLOURS[edge.state] ?? "#333";
    const link = svgEl("a", { href: `/edges/${edge.id}`, class: "edge-point", "data-state": edge.state, "data-name": edge.name },
      svgEl("title", {}, `${edge.name} (${edge.nid}): ${edge.states.join(", ")}`),
      svgEl("circle", { cx: x, cy: y, r: 14, fill: colour, stroke: "#fff", "stroke-width": 3 }),
      svgEl("text", { x, y: y - 20, "text-anchor": "middle", "font-size": 14, "font-weight": 600, fill: "#1d2430" }, edge.name));
    svg.append(link);
  }
  container.replaceChildren(svg);
}

export function legend(container, states) {
  container.replaceChildren(...states.map((s) => {
    const swatch = el("span", { class: "swatch" });
    swatch.style.background = STATE_COLOURS[s];
    return el("span", { class: "legend-item" }, swatch, s);
  }));
}

// A map to pick a position on: the placed edges for orientation (framed around them, or the whole
// world when none is placed), the picked point, and a click that reports the latitude and
// longitude under it to `onPick`.
export function pickMap(container, edges, { picked = null, onPick, tileUrl = "" } = {}) {
  const placed = edges.filter(hasGps);
  let cx = 0.5, cy = 0.5, span = 1;
  if (placed.length) {
    const xs = placed.map((e) => mx(e.longitude)), ys = placed.map((e) => my(e.latitude));
    cx = (Math.min(...xs) + Math.max(...xs)) / 2;
    cy = (Math.min(...ys) + Math.max(...ys)) / 2;
    const spanY = Math.max(...ys) - Math.min(...ys);
    span = Math.max(Math.max(...xs) - Math.min(...xs), spanY * (W - 2 * PAD) / (H - 2 * PAD), 0.0003) * 1.5;
  }
  const x0 = cx - span / 2, x1 = cx + span / 2;
  const spanY = span * (H - 2 * PAD) / (W - 2 * PAD);
  const y0 = cy - spanY / 2, y1 = cy + spanY / 2;
  const scale = (W - 2 * PAD) / span;
  const px = (x) => PAD + (x - x0) * scale;
  const py = (y) => PAD + (y - y0) * scale;
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: "pick", "aria-label": "Click to set the position" });
  svg.append(svgEl("rect", { x: 0, y: 0, width: W, height: H, fill: "#eef3f7" }));
  if (tileUrl) tiles(svg, tileUrl, { x0, x1, y0, y1, span, scale, px, py });
  svg.append(graticule({ x0, x1, y0, y1, scale, px, py }));
  for (const edge of placed) {
    const x = px(mx(edge.longitude)), y = py(my(edge.latitude));
    svg.append(svgEl("g", { class: "edge-point", "data-name": edge.name },
      svgEl("circle", { cx: x, cy: y, r: 8, fill: "#8a94a3", stroke: "#fff", "stroke-width": 2 }),
      svgEl("text", { x, y: y - 12, "text-anchor": "middle", "font-size": 12, fill: "#1d2430" }, edge.name)));
  }
  if (picked && hasGps(picked)) {
    const x = px(mx(picked.longitude)), y = py(my(picked.latitude));
    svg.append(svgEl("circle", { class: "picked", cx: x, cy: y, r: 10, fill: "#1f5fbf", stroke: "#fff", "stroke-width": 3 }));
  }
  svg.addEventListener("click", (event) => {
    const point = svg.createSVGPoint();
    point.x = event.clientX; point.y = event.clientY;
    const at = point.matrixTransform(svg.getScreenCTM().inverse());
    const lon = (x0 + (at.x - PAD) / scale) * 360 - 180;
    const lat = latOf(Math.max(0, Math.min(1, y0 + (at.y - PAD) / scale)));
    const round = (v) => Math.round(v * 1e5) / 1e5;
    onPick({ latitude: round(Math.max(-85, Math.min(85, lat))), longitude: round(Math.max(-180, Math.min(180, lon))) });
  });
  container.replaceChildren(svg);
}
