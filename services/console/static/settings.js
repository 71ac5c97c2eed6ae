// Settings: the result-code -> condition -> ai_class map (setup's), and the optimizer's policy
// settings that change at run time, with who changed them. The services validate; their refusals
// show as they come.
import { api, el, fmt, showProblems, showMessage, clearMessages, confirmAction } from "./common.js";

let data = null;

function renderConditions() {
  const mapping = data.conditions;
  const body = document.querySelector("#conditions-table tbody");
  if (!mapping) { body.replaceChildren(el("tr", {}, el("td", { colspan: 4, class: "empty" }, "setup is not answering."))); return; }
  const rows = Object.entries(mapping.codes).sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }))
    .map(([code, condition]) => el("tr", { "data-code": code },
      el("td", {}, code), el("td", {}, condition), el("td", {}, mapping.ai_classes[condition] ?? "– (no variant)"),
      el("td", {}, el("button", { type: "button", class: "danger", onclick: () => removeCode(code) }, "Remove"))));
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 4, class: "empty" }, "No result code is mapped."))]));
}

async function saveConditions(codes, aiClasses, done) {
  try {
    data.conditions = await api("/api/conditions", { method: "PUT", json: { codes, ai_classes: aiClasses } });
    clearMessages("conditions");
    showMessage(done, { key: "conditions" });
    renderConditions();
    return true;
  } catch (e) { showMessage(e.message, { error: true, key: "conditions" }); return false; }
}

async function removeCode(code) {
  if (!(await confirmAction(`Forget result code ${code}?`))) return;
  const codes = { ...data.conditions.codes };
  delete codes[code];
  await saveConditions(codes, data.conditions.ai_classes, `Result code ${code} removed.`);
}

document.getElementById("condition-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const code = document.getElementById("condition-code").value.trim();
  const condition = document.getElementById("condition-name").value.trim();
  const aiClass = document.getElementById("condition-class").value.trim();
  const classes = { ...data.conditions.ai_classes };
  if (aiClass) classes[condition] = aiClass;
  if (await saveConditions({ ...data.conditions.codes, [code]: condition }, classes, `Result code ${code} means ${condition}.`)) {
    event.target.reset();
  }
});

// One input per setting, typed after its current value; lists and objects as JSON.
function input(policy, key, value) {
  const id = `policy-${policy}-${key}`;
  let control;
  if (typeof value === "boolean") control = el("input", { id, type: "checkbox", checked: value, "data-kind": "boolean" });
  else if (typeof value === "number") control = el("input", { id, type: "number", step: "any", value, "data-kind": "number" });
  else if (typeof value === "string") control = el("input", { id, value, "data-kind": "string" });
  else control = el("input", { id, value: JSON.stringify(value), "data-kind": "json", size: 30 });
  control.dataset.key = key;
  return el("label", { class: "setting" }, `${key} `, control);
}

function valueOf(control) {
  switch (control.dataset.kind) {
    case "boolean": return control.checked;
    case "number": return control.value === "" ? null : Number(control.value);
    case "json": return JSON.parse(control.value);
    default: return control.value;
  }
}

function renderPolicies() {
  const box = document.getElementById("policies");
  if (!data.policies.length) { box.replaceChildren(el("p", { class: "empty" }, "The optimizer is not answering.")); return; }
  box.replaceChildren(...data.policies.map((p) => {
    const changed = Object.keys(p.overrides);
    const formEl = el("form", { class: "policy", "data-policy": p.name },
      el("fieldset", {}, el("legend", {}, `${p.name} `, el("span", { class: "meta" }, p.enabled ? "enabled" : "disabled")),
        el("div", { class: "settings" }, Object.entries(p.effective).map(([k, v]) => input(p.name, k, v))),
        el("p", { class: "meta" }, changed.length ? `Changed from the defaults: ${changed.join(", ")}` : "All at their defaults."),
        el("div", { class: "inline" }, el("button", { type: "submit", class: "primary" }, `Save ${p.name}`),
          changed.length ? el("button", { type: "button", onclick: () => reset(p.name) }, "Back to defaults") : "")));
    formEl.addEventListener("submit", (event) => { event.preventDefault(); save(p, formEl); });
    return formEl;
  }));
}

async function save(policy, formEl) {
  const changes = {};
  try {
    for (const control of formEl.querySelectorAll("[data-key]")) {
      const value = valueOf(control);
      if (JSON.stringify(value) !== JSON.stringify(policy.effective[control.dataset.key])) changes[control.dataset.key] = value;
    }
  } catch { showMessage(`${policy.name}: a list or object setting is not valid JSON.`, { error: true, key: "policies" }); return; }
  if (!Object.keys(changes).length) { showMessage(`${policy.name}: nothing changed.`, { key: "policies" }); return; }
  try {
    await api(`/api/policies/${policy.name}`, { method: "PATCH", json: changes });
    clearMessages("policies");
    showMessage(`${policy.name}: ${Object.keys(changes).join(", ")} saved.`, { key: "policies" });
    await load();
  } catch (e) { showMessage(`${policy.name}: ${e.message}`, { error: true, key: "policies" }); }
}

async function reset(name) {
  if (!(await confirmAction(`Put every setting of ${name} back to its default?`))) return;
  try { await api(`/api/policies/${name}/overrides`, { method: "DELETE" }); clearMessages("policies"); showMessage(`${name}: back to the defaults.`, { key: "policies" }); await load(); }
  catch (e) { showMessage(`${name}: ${e.message}`, { error: true, key: "policies" }); }
}

function renderChanges() {
  const list = document.getElementById("policy-changes");
  list.replaceChildren(...(data.changes.length ? data.changes.map((c) => el("li", {},
    el("div", { class: "meta" }, `${fmt.time(c.at)} · ${c.policy} · by ${c.changed_by}`),
    el("div", {}, c.reset ? "back to the defaults" : JSON.stringify(c.changes)))) : [el("li", { class: "empty" }, "No change yet.")]));
}

async function load() {
  try {
    data = await api("/api/settings");
    clearMessages("load");
    showProblems(data.problems);
    renderConditions(); renderPolicies(); renderChanges();
  } catch (e) { if (e.status !== 401) showMessage(e.message, { error: true, key: "load" }); }
}

await load();
