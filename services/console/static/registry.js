// Registry: register, edit and remove edges (the position picked on the map), clusters with the
// state of their master, masters with theirs. Setup validates; its refusals show as they come.
import { api, el, fmt, showProblems, showMessage, clearMessages, confirmAction } from "./common.js";
import { pickMap } from "./map.js";

const tileUrl = document.getElementById("main").dataset.tileUrl;
const form = document.getElementById("edge-form");
const field = (id) => document.getElementById(id);
let data = null;
let editing = null; // the edge being edited, or null: registering a new one

const position = () => {
  const lat = field("edge-latitude").value, lon = field("edge-longitude").value;
  return lat !== "" && lon !== "" ? { latitude: Number(lat), longitude: Number(lon) } : null;
};

function drawPicker() {
  const edges = (data?.edges ?? []).filter((e) => e.gps && e.id !== editing?.id)
    .map((e) => ({ name: e.name, latitude: e.gps.latitude, longitude: e.gps.longitude }));
  pickMap(field("pick-map"), edges, {
    picked: position(),
    tileUrl,
    onPick: ({ latitude, longitude }) => {
      field("edge-latitude").value = latitude;
      field("edge-longitude").value = longitude;
      drawPicker();
    },
  });
}

function clusterOptions(select, withNone) {
  const keep = select.value;
  const options = data.clusters.map((c) => el("option", { value: c.id }, `${c.name} (${c.runtime})`));
  select.replaceChildren(...(withNone ? [el("option", { value: "" }, withNone)] : []), ...options);
  if (keep) select.value = keep;
}

// What keeps policies from acting for the edge, from what the registry knows (the edge's page
// says it all, from the optimizer).
function policyFlags(edge, clusters) {
  const flags = [];
  if (!edge.gps) flags.push("no GPS: overload and focus pass it by");
  if (edge.isSupportAnnalysis !== "YES") flags.push("no analysis support: never a helper");
  if (clusters.get(edge.cluster_id)?.master_state === "silent") flags.push("master silent: no policy decides for it");
  return flags;
}

function render() {
  showProblems(data.problems);
  clusterOptions(field("edge-cluster"), "the default cluster");
  clusterOptions(field("master-cluster"), "none");
  const clusters = new Map(data.clusters.map((c) => [c.id, c]));
  const edgeRows = data.edges.map((e) => {
    const flags = policyFlags(e, clusters);
    return el("tr", { "data-edge": e.name },
      el("td", {}, el("a", { href: `/edges/${e.id}` }, e.name), el("div", { class: "meta" }, `${e.nid} · ${e.status}`)),
      el("td", {}, clusters.get(e.cluster_id)?.name ?? e.cluster_id),
      el("td", { class: "position" }, e.gps ? `${e.gps.latitude.toFixed(5)}, ${e.gps.longitude.toFixed(5)}` : "not set"),
      el("td", {}, [e.capacity?.cpu && `${e.capacity.cpu} cpu`, e.capacity?.memory_mb && `${e.capacity.memory_mb} MB`, e.capacity?.gpu && `${e.capacity.gpu} gpu`].filter(Boolean).join(", ") || "–"),
      el("td", { class: "flags" }, flags.length ? flags.map((f) => el("div", { class: "flag" }, f)) : "all apply"),
      el("td", {}, el("button", { type: "button", onclick: () => edit(e) }, "Edit"), " ",
        el("button", { type: "button", class: "danger", onclick: () => removeEdge(e) }, "Remove")));
  });
  document.querySelector("#edges-table tbody").replaceChildren(...(edgeRows.length ? edgeRows
    : [el("tr", {}, el("td", { colspan: 6, class: "empty" }, "No edges are registered yet."))]));

  const clusterRows = data.clusters.map((c) => el("tr", { "data-cluster": c.name },
    el("td", {}, c.name, el("div", { class: "meta" }, c.description || "")),
    el("td", {}, c.runtime), el("td", {}, c.namespace),
    el("td", {}, c.master_name ?? "the default master"),
    el("td", {}, el("span", { class: `master-${c.master_state}` }, c.master_state), el("div", { class: "meta" }, c.master_last_seen_at ? `seen ${fmt.ago(c.master_last_seen_at)}` : "")),
    el("td", {}, el("button", { type: "button", class: "danger", onclick: () => remove(`cluster ${c.name}`, `/api/clusters/${c.id}`) }, "Remove"))));
  document.querySelector("#clusters-table tbody").replaceChildren(...clusterRows);

  const masterRows = data.masters.map((m) => el("tr", { "data-master": m.name },
    el("td", {}, m.name, el("div", { class: "meta" }, m.description || "")),
    el("td", {}, m.url), el("td", {}, (m.clusters ?? []).join(", ") || "–"),
    el("td", {}, el("span", { class: `master-${m.state}` }, m.state)),
    el("td", {}, fmt.ago(m.last_seen_at)),
    el("td", {}, el("button", { type: "button", class: "danger", onclick: () => remove(`master ${m.name}`, `/api/masters/${m.id}`) }, "Remove"))));
  document.querySelector("#masters-table tbody").replaceChildren(...(masterRows.length ? masterRows
    : [el("tr", {}, el("td", { colspan: 6, class: "empty" }, "No master is registered: the default master (EDGE_MASTER_URL) serves every cluster."))]));
  drawPicker();
}

async function load() {
  try { data = await api("/api/registry"); clearMessages("load"); render(); return true; }
  catch (e) { if (e.status !== 401) showMessage(e.message, { error: true, key: "load" }); return false; }
}

function edit(edge) {
  editing = edge;
  field("edge-form-title").textContent = `Edit ${edge.name}`;
  field("edge-save").textContent = "Save";
  field("edge-cancel").hidden = false;
  field("edge-nid").disabled = true;
  const values = {
    "edge-name": edge.name, "edge-nid": edge.nid, "edge-cluster": edge.cluster_id, "edge-address": edge.address,
    "edge-ip": edge.ip, "edge-latitude": edge.gps?.latitude, "edge-longitude": edge.gps?.longitude,
    "edge-time-zone": edge.time_zone, "edge-node-name": edge.node_name, "edge-cpu": edge.capacity?.cpu,
    "edge-memory": edge.capacity?.memory_mb, "edge-gpu": edge.capacity?.gpu, "edge-description": edge.description,
  };
  for (const [id, value] of Object.entries(values)) field(id).value = value ?? "";
  field("edge-analysis").checked = edge.isSupportAnnalysis === "YES";
  drawPicker();
  form.scrollIntoView({ block: "start" });
}

function resetForm() {
  editing = null;
  form.reset();
  field("edge-form-title").textContent = "Register an edge";
  field("edge-save").textContent = "Register";
  field("edge-cancel").hidden = true;
  field("edge-nid").disabled = false;
  drawPicker();
}

function edgeBody() {
  const text = (id) => field(id).value.trim();
  const number = (id) => (field(id).value === "" ? undefined : Number(field(id).value));
  const body = { name: text("edge-name"), isSupportAnnalysis: field("edge-analysis").checked ? "YES" : "NO" };
  for (const [key, id] of [["address", "edge-address"], ["ip", "edge-ip"], ["time_zone", "edge-time-zone"],
    ["node_name", "edge-node-name"], ["description", "edge-description"]]) {
    if (text(id)) body[key] = text(id);
  }
  if (!editing && text("edge-nid")) body.nid = text("edge-nid");
  if (field("edge-cluster").value) body.cluster_id = Number(field("edge-cluster").value);
  const gps = position();
  if (gps) body.gps = gps;
  const capacity = { cpu: number("edge-cpu"), memory_mb: number("edge-memory"), gpu: number("edge-gpu") };
  if (Object.values(capacity).some((v) => v !== undefined)) body.capacity = capacity;
  return body;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = field("edge-status");
  const body = edgeBody();
  if ((field("edge-latitude").value === "") !== (field("edge-longitude").value === "")) {
    showMessage("Give both latitude and longitude (or click the map).", { error: true, key: "edge" });
    return;
  }
  try {
    if (editing) {
      const saved = await api(`/api/edges/${editing.id}`, { method: "PATCH", json: body });
      clearMessages("edge");
      showMessage(`${saved.name} saved.`, { key: "edge" });
    } else {
      const created = await api("/api/edges", { method: "POST", json: body });
      clearMessages("edge");
      showMessage(`${created.name} registered (node id ${created.nid}). Its token, shown only this once: ${created.token}`, { key: "edge" });
      if (!created.gps) showMessage(`${created.name} has no position: the overload and focus policies pass it by until it has one.`, { key: "edge" });
    }
    status.textContent = "";
    resetForm();
    await load();
  } catch (e) { showMessage(e.message, { error: true, key: "edge" }); }
});
field("edge-cancel").addEventListener("click", resetForm);
for (const id of ["edge-latitude", "edge-longitude"]) field(id).addEventListener("change", drawPicker);

async function remove(what, path) {
  if (!(await confirmAction(`Remove ${what}?`))) return;
  try { await api(path, { method: "DELETE" }); clearMessages("action"); showMessage(`${what} removed.`, { key: "action" }); await load(); }
  catch (e) { showMessage(e.message, { error: true, key: "action" }); }
}

function removeEdge(edge) {
  return remove(`edge ${edge.name} (its tokens stop working)`, `/api/edges/${edge.id}`).then(() => { if (editing?.id === edge.id) resetForm(); });
}

async function submitForm(event, path, body, done) {
  event.preventDefault();
  try { await api(path, { method: "POST", json: body }); clearMessages("action"); showMessage(done, { key: "action" }); event.target.reset(); await load(); }
  catch (e) { showMessage(e.message, { error: true, key: "action" }); }
}

field("cluster-form").addEventListener("submit", (event) => {
  const body = { name: field("cluster-name").value.trim(), runtime: field("cluster-runtime").value };
  if (field("cluster-namespace").value.trim()) body.namespace = field("cluster-namespace").value.trim();
  return submitForm(event, "/api/clusters", body, `cluster ${body.name} added.`);
});
field("master-form").addEventListener("submit", (event) => {
  const body = { name: field("master-name").value.trim(), url: field("master-url").value.trim() };
  if (field("master-cluster").value) body.cluster_id = Number(field("master-cluster").value);
  return submitForm(event, "/api/masters", body, `master ${body.name} added.`);
});

if (await load()) {
  const wanted = Number(new URLSearchParams(location.search).get("edit"));
  const edge = data.edges.find((e) => e.id === wanted);
  if (edge) edit(edge);
}
