// One edge: details, charts from the VMS's series, deployments (desired vs observed) with deploy
// and remove, pin and unpin, routing and focus, the optimizer's explanation and decisions; kept
// live by Server-Sent Events.
import { api, el, fmt, live, showProblems, showMessage, clearMessages, confirmAction, ApiError } from "./common.js";
import { lineChart, bandChart, barChart } from "./charts.js";

const title = document.getElementById("edge-title");
const edgeId = Number(title.dataset.edgeId);
let current = null;

function card(label, value) { return el("div", { class: "card" }, el("dl", {}, el("dt", {}, label), el("dd", {}, value ?? "–"))); }

async function act(text, call, done) {
  if (!(await confirmAction(text))) return;
  try { await call(); clearMessages("action"); if (done) showMessage(done, { key: "action" }); await load(); }
  catch (e) { showMessage(e.message, { error: true, key: "action" }); }
}

function renderDetails(data) {
  const e = data.edge;
  title.textContent = `${e.name} (${e.nid})`;
  const pin = data.pin;
  const pinButton = pin
    ? el("button", { type: "button", id: "unpin", onclick: () => act(`Unpin ${e.name}? The policies may change what it runs again.`, () => api(`/api/pins/${edgeId}`, { method: "DELETE" }), `${e.name} unpinned.`) }, "Unpin")
    : el("button", { type: "button", id: "pin", onclick: () => act(`Pin ${e.name}? No policy will change what it runs until it is unpinned.`, () => api(`/api/pins/${edgeId}`, { method: "PUT", json: { reason: "pinned in the console" } }), `${e.name} pinned.`) }, "Pin");
  document.getElementById("edge-details").replaceChildren(
    card("Status", e.status), card("Node id", e.nid),
    card("GPS", e.gps ? `${e.gps.latitude.toFixed(4)}, ${e.gps.longitude.toFixed(4)}` : "not set"),
    card("Address", e.address || "–"), card("Agent", e.agent_url ?? e.node_name ?? "–"),
    card("Capacity", e.capacity ? `${e.capacity.cpu ?? "?"} cpu, ${e.capacity.memory_mb ?? "?"} MB` : "–"),
    card("Pinned", pin ? `yes: ${pin.reason || "no reason"}` : "no"),
    el("div", { class: "card" }, pinButton, " ", el("a", { href: `/registry?edit=${edgeId}` }, "Edit")));
}

function renderDeployments(data) {
  const packages = new Map(data.ai_packages.map((p) => [p.id, p]));
  const rows = data.deployments.map((d) => el("tr", { "data-deployment": d.id, "data-filename": d.filename },
    el("td", {}, d.filename, el("div", { class: "meta" }, packages.get(d.ai_id) ? `${packages.get(d.ai_id).ai_class} ${packages.get(d.ai_id).version}` : `AI ${d.ai_id}`)),
    el("td", {}, d.desired),
    el("td", { class: "observed" }, el("span", { class: `obs-${d.observed}` }, d.observed)),
    el("td", {}, `${d.observed_generation} / ${d.generation}`),
    el("td", {}, d.restarts),
    el("td", {}, d.observed_reason ?? ""),
    el("td", {}, d.desired === "running" ? el("button", { type: "button", class: "danger", onclick: () => act(`Remove ${d.filename} from ${data.edge.name}?`, () => api(`/api/deployments/${d.id}`, { method: "DELETE" }), `${d.filename}: removal requested.`) }, "Remove") : "")));
  document.querySelector("#deployments tbody").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 7, class: "empty" }, "No AI is deployed on this edge."))]));
  const form = document.getElementById("deploy-form");
  if (!form.firstChild) {
    const select = el("select", { id: "deploy-ai" });
    form.append(el("form", { class: "inline", onsubmit: (ev) => {
      ev.preventDefault();
      const ai = Number(select.value);
      const p = packages.get(ai) ?? current.ai_packages.find((x) => x.id === ai);
      if (!ai) return;
      act(`Deploy ${p.filename} ${p.version} on ${data.edge.name}?`, () => api("/api/deployments", { method: "POST", json: { edge_id: edgeId, ai_id: ai } }), `${p.filename}: deployment requested.`);
    } }, el("label", { for: "deploy-ai" }, "Deploy an AI"), select, el("button", { type: "submit", class: "primary" }, "Deploy")));
  }
  const select = document.getElementById("deploy-ai");
  const keep = select.value;
  select.replaceChildren(...(data.ai_packages.length ? data.ai_packages.map((p) => el("option", { value: p.id }, `${p.filename} ${p.version} (${p.ai_class})`)) : [el("option", { value: "" }, "no AI package is ready")]));
  if (keep) select.value = keep;
}

function decisionItem(d) {
  return el("li", {}, el("div", { class: "meta" }, `${fmt.time(d.at)} · ${d.policy} · ${d.action} · ${d.outcome}${d.dry_run ? " (dry run)" : ""}`), el("div", {}, d.reason));
}

function renderRouting(data) {
  const r = data.routing;
  const focus = data.deployments.filter((d) => d.desired === "running" && Object.keys(d.params ?? {}).some((k) => k.startsWith("focus")));
  const where = !r ? "unknown (the optimizer is not answering)" : r.analysis === "local" ? "on the edge itself (local)"
    : r.analysis === "edge" ? `on the helper edge ${r.helper_nid}` : "on the server (analysis service)";
  document.getElementById("routing").replaceChildren(
    el("p", {}, `Analysis runs ${where}.`),
    r ? el("p", {}, r.route_low_confidence ? `Low-confidence frames go to ${r.analysis_url} (threshold ${r.confidence_threshold}).` : "Low-confidence frames stay on the edge.") : "",
    el("p", {}, focus.length ? `Focus: ${focus.map((d) => `${d.filename} ${JSON.stringify(Object.fromEntries(Object.entries(d.params).filter(([k]) => k.startsWith("focus"))))}`).join("; ")}` : "Focus: none."));
}

function renderExplain(data) {
  const box = document.getElementById("explain");
  const x = data.explain;
  if (!x) { box.replaceChildren(el("p", { class: "empty" }, "The optimizer's explanation is not available.")); return; }
  const items = x.deployments.map((d) => el("li", {}, el("strong", {}, `${d.filename} ${d.version ?? ""}`), ` (${d.ai_class ?? "?"}), observed ${d.observed}, ${d.restarts} restart(s): `,
    d.decided_by ? `${d.decided_by.policy} decided to ${d.decided_by.action} on ${fmt.time(d.decided_by.at)} because ${d.decided_by.reason}` : "requested by the operator (no policy decision)."));
  const blocked = (x.blocked ?? []).map((b) => el("li", { class: "message", "data-blocker": b.blocker }, `${b.policies.join(", ")}: ${b.reason}`));
  box.replaceChildren(
    el("p", {}, `${x.name} is ${x.status}${x.pinned ? ", pinned (no policy touches it)" : ""}. Condition: ${x.node?.condition ?? "unknown"}.`),
    blocked.length ? el("ul", { class: "blocked", "aria-label": "What keeps policies from acting" }, blocked) : "",
    items.length ? el("ul", {}, items) : el("p", { class: "empty" }, "It runs no AI."));
  const list = document.getElementById("edge-decisions");
  list.replaceChildren(...(x.recent_decisions.length ? x.recent_decisions.map(decisionItem) : [el("li", { class: "empty" }, "No decisions about this edge yet.")]));
}

function render(data) {
  current = data;
  clearMessages("load");
  showProblems(current.problems);
  renderDetails(current); renderDeployments(current); renderRouting(current); renderExplain(current);
}

async function load() {
  try {
    render(await api(`/api/edges/${edgeId}`));
    return true;
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) showMessage(`Edge ${edgeId} does not exist.`, { error: true, key: "load" });
    else if (e.status !== 401) showMessage(e.message, { error: true, key: "load" });
    return false;
  }
}

const points = (series, key) => series.points.map((p) => ({ t: new Date(p.t).getTime(), v: p[key] }));

async function charts() {
  if (!current) return;
  const nid = current.edge.nid;
  const ask = (kind) => api(`/api/nodes/${encodeURIComponent(nid)}/series?kind=${kind}&minutes=30&step=30s`);
  try {
    const [usage, environment, detections] = await Promise.all([ask("usage"), ask("environment"), ask("detections")]);
    clearMessages("charts");
    lineChart(document.getElementById("chart-cpu"), points(usage, "cpu"), { label: "CPU", max: 100, unit: "%" });
    lineChart(document.getElementById("chart-memory"), points(usage, "memory"), { label: "Memory", max: 100, unit: "%", colour: "#e67e22" });
    bandChart(document.getElementById("chart-condition"), points(environment, "condition"), { label: "Condition", step: environment.step_s * 1000 });
    barChart(document.getElementById("chart-detections"), points(detections, "detected"), { label: "Detections", step: detections.step_s * 1000 });
  } catch (e) {
    if (e.status !== 401) showMessage(`Charts: ${e.message}`, { error: true, key: "charts" });
  }
}

if (await load()) {
  await charts();
  // The edge's view arrives live (Server-Sent Events); the charts, a time window, every 10 s.
  live(`/api/edges/${edgeId}/events`, {
    edge: render,
    problem: (p) => showMessage(`${p.service} is not answering: ${p.message}`, { error: true, key: "load" }),
  });
  setInterval(charts, 10000);
}
