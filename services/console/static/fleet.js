// Fleet: the map and the table, filtered, kept live by Server-Sent Events.
import { live, el, fmt, stateBadge, showProblems, showMessage, clearMessages } from "./common.js";
import { drawMap, legend } from "./map.js";

const main = document.getElementById("main");
const tileUrl = main.dataset.tileUrl;
const stateFilter = document.getElementById("filter-state");
const conditionFilter = document.getElementById("filter-condition");
const textFilter = document.getElementById("filter-text");
let view = null;

function options(select, values) {
  const current = select.value;
  select.replaceChildren(el("option", { value: "" }, "all"), ...values.map((v) => el("option", { value: v }, v)));
  select.value = values.includes(current) ? current : "";
}

function visible(edges) {
  const state = stateFilter.value, condition = conditionFilter.value, text = textFilter.value.trim().toLowerCase();
  return edges.filter((e) => (!state || e.states.includes(state))
    && (!condition || e.condition === condition)
    && (!text || e.name.toLowerCase().includes(text) || e.nid.toLowerCase().includes(text)));
}

function render() {
  if (!view) return;
  showProblems(view.problems);
  clearMessages("empty");
  if (!view.edges.length && !view.problems.length) {
    showMessage("No edges are registered yet. Add one with setup's POST /edges (or run edgectl up for the demo fleet).", { key: "empty" });
  }
  options(stateFilter, view.states);
  options(conditionFilter, [...new Set(view.edges.map((e) => e.condition).filter(Boolean))].sort());
  const edges = visible(view.edges);
  drawMap(document.getElementById("map"), edges, { tileUrl });
  legend(document.getElementById("legend"), view.states);
  const rows = edges.map((e) => el("tr", { "data-edge": e.name },
    el("td", {}, el("a", { href: `/edges/${e.id}` }, e.name), el("div", { class: "meta" }, `${e.nid}${e.pinned ? " · pinned" : ""}`)),
    el("td", {}, e.states.map(stateBadge), el("div", { class: "meta" }, `seen ${fmt.ago(e.last_seen)}`)),
    el("td", {}, e.condition ?? "–"),
    el("td", {}, e.ais.length ? e.ais.map((a) => el("div", { class: "ai" }, `${a.filename} (${a.ai_class ?? "?"}, ${a.version ?? "?"}) `, el("span", { class: `obs-${a.observed}` }, a.observed))) : el("span", { class: "empty" }, "none")),
    el("td", {}, fmt.pct(e.cpu)),
    el("td", {}, fmt.pct(e.memory))));
  const body = document.querySelector("#fleet-table tbody");
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 6, class: "empty" }, view.edges.length ? "No edge matches the filters." : "No edges."))]));
}

for (const input of [stateFilter, conditionFilter, textFilter]) input.addEventListener("input", render);
live("/api/fleet/events", { fleet: (data) => { view = data; render(); } });
