// Decisions: the optimizer's log, filtered, new entries arriving live; its pause and dry-run.
import { api, el, fmt, live, showMessage, clearMessages } from "./common.js";

const form = document.getElementById("decision-filters");
const list = document.getElementById("decision-log");
const paused = document.getElementById("paused"), dryRun = document.getElementById("dry-run");

function filters() {
  const data = Object.fromEntries(new FormData(form).entries());
  for (const k of ["since", "until"]) if (data[k]) data[k] = new Date(data[k]).toISOString();
  return Object.fromEntries(Object.entries(data).filter(([, v]) => v));
}

function matches(d, f) {
  return (!f.policy || d.policy === f.policy) && (!f.action || d.action === f.action)
    && (!f.edge || [String(d.edge_id), d.edge_name, d.nid].includes(f.edge))
    && (!f.since || d.at >= f.since) && (!f.until || d.at <= f.until);
}

function item(d, fresh = false) {
  return el("li", { class: fresh ? "new" : "", "data-decision": d.id, "data-policy": d.policy },
    el("div", { class: "meta" }, `${fmt.time(d.at)} · ${d.policy} · ${d.action} · ${d.edge_name ?? d.nid ?? "fleet"} · ${d.outcome}${d.dry_run ? " (dry run)" : ""}`),
    el("div", {}, d.reason),
    d.outcome_detail ? el("div", { class: "meta" }, d.outcome_detail) : "",
    el("details", {}, el("summary", {}, "Inputs and operations"), el("pre", {}, JSON.stringify({ inputs: d.inputs, operations: d.operations }, null, 2))),
    clipEdge(d) ? el("button", { type: "button", class: "decision-clips", onclick: () => clipsAround(d) }, "Clips around this") : "");
}

// Event clips: newest first, within the filters' span, or one edge's around one decision.
const CLIP_WINDOW_MS = 5 * 60 * 1000;
const player = document.getElementById("clip-player");
const scope = document.getElementById("clips-scope"), allClips = document.getElementById("clips-all");
let clipQuery = null; // null: all edges within the filters; else {nid, since, until} of a decision

// A focus decision names the edge whose detection event raised it in its inputs.
function clipEdge(d) { return d.inputs?.source_nid ?? d.nid ?? null; }

function clipsAround(d) {
  const at = new Date(d.at).getTime();
  clipQuery = { nid: clipEdge(d), since: new Date(at - CLIP_WINDOW_MS).toISOString(), until: new Date(at + CLIP_WINDOW_MS).toISOString() };
  scope.textContent = `${clipQuery.nid}, ${fmt.time(clipQuery.since)} – ${fmt.time(clipQuery.until)} (around the decision of ${fmt.time(d.at)})`;
  allClips.hidden = false;
  loadClips();
  document.getElementById("event-clips-title").scrollIntoView();
}

function play(c) {
  player.src = `/api/clips/${c.id}/video`;
  player.hidden = false;
  player.dataset.clip = c.id;
  player.play().catch(() => {});
}

async function loadClips() {
  const f = filters();
  const query = clipQuery ?? Object.fromEntries(Object.entries({ since: f.since, until: f.until }).filter(([, v]) => v));
  try {
    const page = await api(`/api/clips?${new URLSearchParams({ ...query, limit: 20 })}`);
    clearMessages("clips");
    const rows = page.items.map((c) => el("tr", { "data-clip": c.id, "data-nid": c.nid },
      el("td", {}, c.nid),
      el("td", {}, fmt.time(c.started_at)),
      el("td", {}, c.classes.includes("demo") ? `${c.event} (demo event, triggered on purpose)` : c.event),
      el("td", {}, c.classes.join(", ") || "–"),
      el("td", {}, `${c.duration_s.toFixed(1)} s`),
      el("td", {}, el("button", { type: "button", class: "play-clip", onclick: () => play(c) }, "Play"))));
    document.querySelector("#event-clips tbody").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 6, class: "empty" }, "No clip in this span."))]));
  } catch (e) { if (e.status !== 401) showMessage(`Clips: ${e.message}`, { error: true, key: "clips" }); }
}

allClips.addEventListener("click", () => {
  clipQuery = null; scope.textContent = "All edges"; allClips.hidden = true; loadClips();
});

async function load() {
  try {
    const page = await api(`/api/decisions?${new URLSearchParams({ ...filters(), limit: 100 })}`);
    clearMessages("load");
    list.replaceChildren(...(page.items.length ? page.items.map((d) => item(d)) : [el("li", { class: "empty", id: "no-decisions" }, "No decisions match: the optimizer has not decided anything yet, or the filters exclude everything.")]));
  } catch (e) { if (e.status !== 401) showMessage(e.message, { error: true, key: "load" }); }
}

async function controls(change) {
  const status = document.getElementById("control-status");
  try {
    const c = await api("/api/control", change ? { method: "PUT", json: change } : {});
    paused.checked = c.paused; dryRun.checked = c.dry_run;
    status.textContent = c.last_cycle ? `last cycle ${fmt.ago(c.last_cycle.finished_at ?? c.last_cycle.at ?? c.last_cycle.started_at)}` : "";
    clearMessages("control");
  } catch (e) { if (e.status !== 401) showMessage(`Optimizer switches: ${e.message}`, { error: true, key: "control" }); }
}

paused.addEventListener("change", () => controls({ paused: paused.checked }));
dryRun.addEventListener("change", () => controls({ dry_run: dryRun.checked }));
form.addEventListener("submit", (e) => { e.preventDefault(); load(); if (!clipQuery) loadClips(); });

await Promise.all([load(), controls(), loadClips()]);
setInterval(loadClips, 5000);
live("/api/decisions/events", {
  decision: (d) => {
    if (!matches(d, filters())) return;
    document.getElementById("no-decisions")?.remove();
    list.prepend(item(d, true));
  },
  problem: (p) => showMessage(`${p.service} is not answering: ${p.message}`, { error: true, key: "live-problem" }),
  ready: () => clearMessages("live-problem"),
});
