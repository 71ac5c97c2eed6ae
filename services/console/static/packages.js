// AI packages: the list with build status, upload with a progress bar, rollouts with pause,
// resume and roll back; kept live by Server-Sent Events.
import { api, el, fmt, live, showProblems, showMessage, clearMessages, signInAgain, confirmAction } from "./common.js";

const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

async function rolloutAction(r, action) {
  const what = `${r.filename} ${r.to_version}`;
  const text = {
    pause: `Pause the ${what} rollout? No new wave starts; edges already updated keep ${r.to_version}.`,
    resume: `Resume the ${what} rollout? Its waves go on.`,
    rollback: `Roll back the ${what} rollout? Every edge it updated goes back to the version it ran before, and none is updated to ${r.to_version} again.`,
  }[action];
  if (!(await confirmAction(text))) return;
  try {
    const after = await api(`/api/rollouts/${r.id}/${action}`, { method: "POST" });
    clearMessages("action");
    showMessage(`${what} rollout: ${after.status.replace("_", " ")}.`, { key: "action" });
    render(await api("/api/ai-packages"));
  } catch (e) { if (e.status !== 401) showMessage(e.message, { error: true, key: "action" }); }
}

function rolloutButtons(r) {
  const button = (action, label, cls = "") => el("button", { type: "button", class: cls, "data-action": action, onclick: () => rolloutAction(r, action) }, label);
  const buttons = [];
  if (r.status === "active") buttons.push(button("pause", "Pause"));
  if (r.status === "paused") buttons.push(button("resume", "Resume"));
  if (["active", "paused", "halted", "completed"].includes(r.status)) buttons.push(" ", button("rollback", "Roll back", "danger"));
  return buttons;
}

function render(data) {
  clearMessages("load");
  showProblems(data.problems);
  const rows = data.items.map((p) => el("tr", { "data-filename": p.filename },
    el("td", {}, p.filename), el("td", {}, p.ai_class), el("td", {}, p.version), el("td", {}, p.condition ?? "–"),
    el("td", {}, el("span", { class: `obs-${p.status === "ready" ? "running" : p.status === "failed" ? "failed" : "pending"}` }, p.status), p.failure_reason ? el("div", { class: "meta" }, p.failure_reason) : ""),
    el("td", {}, fmt.time(p.updated_at))));
  document.querySelector("#packages tbody").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 6, class: "empty" }, "No AI packages yet: upload one above."))]));
  const rollouts = data.rollouts.map((r) => el("tr", { "data-rollout": r.id, "data-filename": r.filename },
    el("td", {}, r.filename), el("td", {}, r.to_version), el("td", { class: "rollout-state" }, r.status.replace("_", " ")), el("td", {}, r.wave),
    el("td", {}, Object.entries(r.members).map(([k, v]) => `${k}: ${v}`).join(", ") || "–"),
    el("td", {}, r.failed.length ? r.failed.join(", ") : "none"), el("td", {}, fmt.time(r.started_at)),
    el("td", {}, rolloutButtons(r))));
  document.querySelector("#rollouts tbody").replaceChildren(...(rollouts.length ? rollouts : [el("tr", {}, el("td", { colspan: 8, class: "empty" }, "No rollouts: one starts when a newer version of a deployed AI is ready."))]));
}

async function load() {
  try { render(await api("/api/ai-packages")); }
  catch (e) { if (e.status !== 401) showMessage(e.message, { error: true, key: "load" }); }
}

document.getElementById("upload-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const file = document.getElementById("archive").files[0];
  if (!file) return;
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const button = event.target.querySelector("button");
  const type = file.name.endsWith(".zip") ? "application/zip" : "application/gzip";
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/ai-packages");
  xhr.setRequestHeader("Content-Type", type);
  xhr.setRequestHeader("X-CSRF-Token", csrf());
  bar.hidden = false; bar.value = 0; button.disabled = true; status.textContent = "uploading…";
  xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) bar.value = (100 * e.loaded) / e.total; });
  xhr.addEventListener("load", () => {
    button.disabled = false;
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch { body = null; }
    if (xhr.status === 401) { signInAgain(); status.textContent = ""; return; }
    if (xhr.status >= 300) { status.textContent = ""; showMessage(`Upload refused: ${body?.error?.message ?? xhr.status}`, { error: true, key: "upload" }); return; }
    bar.value = 100; clearMessages("upload");
    status.textContent = `uploaded: ${body.filename ?? file.name} ${body.version ?? ""}, building`;
    load();
  });
  xhr.addEventListener("error", () => { button.disabled = false; status.textContent = ""; showMessage("Upload failed: the console does not answer.", { error: true, key: "upload" }); });
  xhr.send(file);
});

live("/api/ai-packages/events", { packages: render });
