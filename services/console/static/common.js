// What every page shares: calls to the console's API (with the CSRF header on changes), the
// message area, small DOM helpers and live updates (Server-Sent Events).

const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

export class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

export function signInAgain() {
  const next = encodeURIComponent(location.pathname);
  showMessage("Your session has expired.", { error: true, link: [`/login?next=${next}&reason=expired`, "Sign in again"], key: "session" });
}

export async function api(path, { method = "GET", json, body, headers = {} } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "same-origin" };
  if (method !== "GET") init.headers["X-CSRF-Token"] = csrfToken();
  if (json !== undefined) { init.body = JSON.stringify(json); init.headers["Content-Type"] = "application/json"; }
  else if (body !== undefined) init.body = body;
  let response;
  try { response = await fetch(path, init); }
  catch { throw new ApiError("The console does not answer: is it running?", 0); }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (response.status === 401) { signInAgain(); throw new ApiError("Your session has expired.", 401); }
  if (!response.ok) {
    const message = data?.error?.message ?? data?.detail ?? `the console answered ${response.status}`;
    throw new ApiError(message, response.status);
  }
  return data;
}

// A message in the page's message area; `key` replaces an earlier message with the same key.
export function showMessage(text, { error = false, link = null, key = null } = {}) {
  const area = document.getElementById("problems");
  if (key) area.querySelector(`[data-key="${key}"]`)?.remove();
  const p = el("p", { class: error ? "message error" : "message" }, text);
  if (key) p.dataset.key = key;
  if (link) { p.append(" "); p.append(el("a", { href: link[0] }, link[1])); }
  area.append(p);
  return p;
}

export function clearMessages(key = null) {
  const area = document.getElementById("problems");
  if (key) area.querySelectorAll(`[data-key="${key}"]`).forEach((n) => n.remove());
  else area.replaceChildren();
}

// The services that did not answer (a view's `problems`), one message each.
export function showProblems(problems, key = "problems") {
  clearMessages(key);
  for (const p of problems ?? []) showMessage(`${p.service} is not answering: ${p.message}`, { error: true, key });
}

export function el(tag, attrs = {}, ...children) {
  const svg = ["svg", "g", "circle", "line", "polyline", "path", "rect", "text", "title", "image", "a"].includes(tag)
    && attrs.svg;
  const node = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "svg" || v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

export const svgEl = (tag, attrs = {}, ...children) => el(tag, { ...attrs, svg: true }, ...children);

export const fmt = {
  pct: (v) => (v === null || v === undefined ? "–" : `${Number(v).toFixed(0)}`),
  time: (iso) => (iso ? new Date(iso).toLocaleString() : "–"),
  ago: (iso) => {
    if (!iso) return "never";
    const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
    return s < 90 ? `${s} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
  },
};

export function stateBadge(state) { return el("span", { class: `state state-${state}` }, state); }

// Live updates: `handlers` by event name. Says on the page when the stream is lost, and when it
// is lost because the session ended.
export function live(url, handlers, indicator = document.getElementById("live")) {
  const source = new EventSource(url);
  source.addEventListener("open", () => {
    clearMessages("live");
    if (indicator) { indicator.textContent = "live"; indicator.classList.add("on"); }
  });
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => handler(JSON.parse(event.data)));
  }
  source.addEventListener("expired", () => { source.close(); signInAgain(); });
  source.addEventListener("error", async () => {
    if (indicator) { indicator.textContent = "reconnecting…"; indicator.classList.remove("on"); }
    try { await api("/api/session"); } catch (e) { if (e.status === 401) { source.close(); return; } }
    showMessage("Live updates interrupted; reconnecting…", { key: "live" });
  });
  return source;
}

// A confirmation in the page's <dialog>: resolves true on Confirm.
export function confirmAction(text) {
  const dialog = document.getElementById("confirm");
  if (!dialog) return Promise.resolve(window.confirm(text));
  document.getElementById("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}
