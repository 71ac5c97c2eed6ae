// Detection, through the analysis service: an image (compressed here first), a video (uploaded,
// then each frame's result drawn as it arrives, saved as a video once every frame is analysed)
// and the camera (frame by frame).
import { api, el, showMessage, clearMessages, signInAgain } from "./common.js";

const $ = (id) => document.getElementById(id);
const csrf = () => document.querySelector('meta[name="csrf-token"]').content;
const showLabels = $("show-labels");
const size = $("display-size");
const MAX_SIDE = 1280; // images are scaled down to this before upload
const PALETTE = ["#ff3b30", "#34c759", "#0a84ff", "#ffcc00", "#ff9500", "#af52de", "#5ac8fa", "#ff2d55"];

// --- tabs, display size ------------------------------------------------------------------------
const tabs = ["image", "video", "camera"];
function select(name) {
  for (const t of tabs) {
    $(`tab-${t}`).setAttribute("aria-selected", String(t === name));
    $(`panel-${t}`).hidden = t !== name;
  }
  history.replaceState(null, "", `#${name}`);
}
for (const t of tabs) $(`tab-${t}`).addEventListener("click", () => select(t));
document.querySelector(".tabs").addEventListener("keydown", (e) => {
  const i = tabs.findIndex((t) => $(`tab-${t}`).getAttribute("aria-selected") === "true");
  const next = e.key === "ArrowRight" ? (i + 1) % 3 : e.key === "ArrowLeft" ? (i + 2) % 3 : null;
  if (next !== null) { select(tabs[next]); $(`tab-${tabs[next]}`).focus(); }
});
const fromHash = () => { if (tabs.includes(location.hash.slice(1))) select(location.hash.slice(1)); };
window.addEventListener("hashchange", fromHash);
fromHash();

function applySize() {
  $("display-size-out").textContent = `${size.value}%`;
  for (const id of ["image-canvas", "video-canvas", "camera-canvas"]) {
    const c = $(id);
    c.style.width = `${Math.round((c.width * size.value) / 100)}px`;
  }
}
size.addEventListener("input", applySize);

// --- drawing ---------------------------------------------------------------------------------
function drawBoxes(ctx, detections) {
  const line = Math.max(2, Math.round(ctx.canvas.width / 320));
  ctx.lineWidth = line;
  ctx.font = `${Math.max(12, Math.round(ctx.canvas.width / 50))}px system-ui, sans-serif`;
  ctx.textBaseline = "top";
  for (const d of detections) {
    const [x1, y1, x2, y2] = d.box;
    const colour = PALETTE[(d.class_id ?? d.class.length) % PALETTE.length];
    ctx.strokeStyle = colour;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    if (showLabels.checked) {
      const text = `${d.class} ${d.confidence.toFixed(2)}`;
      const w = ctx.measureText(text).width + 6, h = parseInt(ctx.font, 10) + 4;
      ctx.fillStyle = colour;
      ctx.fillRect(x1, Math.max(0, y1 - h), w, h);
      ctx.fillStyle = "#000";
      ctx.fillText(text, x1 + 3, Math.max(0, y1 - h) + 2);
    }
  }
}

function paint(canvas, source, detections) {
  const ctx = canvas.getContext("2d");
  if (source) ctx.drawImage(source, 0, 0, canvas.width, canvas.height);
  else { ctx.fillStyle = "#222"; ctx.fillRect(0, 0, canvas.width, canvas.height); }
  drawBoxes(ctx, detections);
}

function resize(canvas, width, height) {
  if (canvas.width !== width || canvas.height !== height) { canvas.width = width; canvas.height = height; }
  applySize();
}

async function analyse(blob) {
  // The raw image to the console, which passes it to the analysis service.
  return api("/api/analyze", { method: "POST", body: blob, headers: { "Content-Type": blob.type || "image/jpeg" } });
}

// --- image -----------------------------------------------------------------------------------
const image = { bitmap: null, detections: [] };
$("image-file").addEventListener("change", () => {
  $("image-analyse").disabled = !$("image-file").files.length; // once per chosen file
  $("image-status").textContent = "";
});

async function compress(file) {
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale); canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
  return { blob, bitmap: await createImageBitmap(canvas) };
}

$("image-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("image-file").files[0];
  if (!file) return;
  $("image-analyse").disabled = true;
  const status = $("image-status");
  try {
    status.textContent = "compressing…";
    const { blob, bitmap } = await compress(file);
    status.textContent = `analysing (${Math.round(file.size / 1024)} kB → ${Math.round(blob.size / 1024)} kB)…`;
    const result = await analyse(blob);
    image.bitmap = bitmap; image.detections = result.detections ?? [];
    resize($("image-canvas"), bitmap.width, bitmap.height);
    paint($("image-canvas"), bitmap, image.detections);
    status.textContent = `${image.detections.length} object(s) found by ${result.model}${result.cached ? " (cached)" : ""}`;
    $("image-canvas").dataset.boxes = String(image.detections.length);
    clearMessages("image");
  } catch (e) {
    status.textContent = "";
    if (e.status !== 401) showMessage(`Image: ${e.message}`, { error: true, key: "image" });
  }
});

// --- video -----------------------------------------------------------------------------------
const video = { id: null, info: null, results: [], drawn: 0, paused: false, ended: false, element: null, playable: false, drawing: false, source: null };
$("video-file").addEventListener("change", () => {
  $("video-analyse").disabled = !$("video-file").files.length;
  $("video-status").textContent = "";
});

function upload(file, bar) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/videos");
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.setRequestHeader("X-CSRF-Token", csrf());
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) bar.value = (100 * e.loaded) / e.total; });
    xhr.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { body = null; }
      if (xhr.status === 401) { signInAgain(); reject(Object.assign(new Error("session expired"), { status: 401 })); }
      else if (xhr.status >= 300) reject(new Error(body?.error?.message ?? `the console answered ${xhr.status}`));
      else { bar.value = 100; resolve(body); }
    });
    xhr.addEventListener("error", () => reject(new Error("the console does not answer")));
    xhr.send(file);
  });
}

function localVideo(file) {
  // The chosen file plays here, so that each result is drawn on its own frame; when this browser
  // cannot decode it, the boxes are drawn on a plain background.
  const element = document.createElement("video");
  element.muted = true; element.preload = "auto"; element.src = URL.createObjectURL(file);
  element.addEventListener("loadeddata", () => { video.playable = true; });
  element.addEventListener("error", () => {
    video.playable = false;
    showMessage("This browser cannot play this video's format: boxes are drawn without the picture (the saved video has both).", { key: "video-format" });
  });
  return element;
}

function seek(element, time) {
  return new Promise((resolve) => {
    const done = () => { clearTimeout(timer); resolve(); };
    const timer = setTimeout(done, 1000);
    element.addEventListener("seeked", done, { once: true });
    element.currentTime = time;
  });
}

async function drawNext() {
  if (video.drawing || video.paused || video.drawn >= video.results.length) return;
  video.drawing = true;
  try {
    const frame = video.results[video.drawn];
    const fps = video.info.fps || 25;
    if (video.playable) await seek(video.element, (frame.time_s ?? frame.frame / fps) + 0.5 / fps);
    paint($("video-canvas"), video.playable ? video.element : null, frame.detections ?? []);
    video.drawn += 1;
    $("video-frame").textContent = String(video.drawn);
  } finally { video.drawing = false; }
}

function playback() {
  // Results are drawn at the video's own frame rate, as they arrive; paused, they wait.
  const period = 1000 / Math.min(30, video.info.fps || 10);
  const timer = setInterval(() => {
    if (video.ended && video.drawn >= video.results.length) clearInterval(timer);
    drawNext();
  }, period);
}

$("video-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("video-file").files[0];
  if (!file) return;
  $("video-analyse").disabled = true;
  $("video-save").disabled = true; $("video-save-progress").value = 0; $("video-download").hidden = true;
  video.source?.close();
  Object.assign(video, { results: [], drawn: 0, paused: false, ended: false });
  const status = $("video-status");
  status.textContent = "uploading…";
  try { video.info = await upload(file, $("video-upload")); }
  catch (e) { status.textContent = ""; if (e.status !== 401) showMessage(`Video: ${e.message}`, { error: true, key: "video" }); return; }
  clearMessages("video");
  video.id = video.info.video_id;
  video.element = localVideo(file);
  resize($("video-canvas"), video.info.width, video.info.height);
  $("video-frames").textContent = String(video.info.frames_total);
  $("video-toggle").disabled = false; $("video-toggle").textContent = "Pause";
  status.textContent = "analysing…";
  const source = new EventSource(`/api/videos/${video.id}/events`);
  video.source = source;
  source.addEventListener("frame", (e) => {
    const frame = JSON.parse(e.data);
    video.results[frame.frame] = frame;
    $("video-fps").textContent = frame.fps.toFixed(1);
    status.textContent = `analysed ${video.results.length} / ${video.info.frames_total}`;
  });
  source.addEventListener("end", (e) => {
    const end = JSON.parse(e.data);
    video.ended = true; source.close();
    if (end.status === "done") { status.textContent = `all ${end.frames} frames analysed`; $("video-save").disabled = false; }
    else showMessage(`Video: ${end.error ?? "the analysis failed"}`, { error: true, key: "video" });
  });
  source.addEventListener("error", () => {
    if (!video.ended) { source.close(); showMessage("Video: the result stream was interrupted.", { error: true, key: "video" }); }
  });
  playback();
});

$("video-toggle").addEventListener("click", () => {
  video.paused = !video.paused;
  $("video-toggle").textContent = video.paused ? "Play" : "Pause";
  $("video-toggle").setAttribute("aria-pressed", String(video.paused));
});

$("video-save").addEventListener("click", async () => {
  const bar = $("video-save-progress");
  $("video-save").disabled = true;
  try {
    const response = await fetch(`/api/videos/${video.id}/annotated`, { credentials: "same-origin" });
    if (response.status === 401) { signInAgain(); return; }
    if (!response.ok) throw new Error(`the console answered ${response.status}`);
    const total = Number(response.headers.get("Content-Length")) || 0;
    const reader = response.body.getReader();
    const chunks = []; let received = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value); received += value.length;
      if (total) bar.value = (100 * received) / total;
    }
    bar.value = 100;
    const link = $("video-download");
    link.href = URL.createObjectURL(new Blob(chunks, { type: "video/mp4" }));
    link.download = `${video.id}-annotated.mp4`;
    link.textContent = `${link.download} (${Math.round(received / 1024)} kB)`;
    link.hidden = false;
    link.click();
  } catch (e) { showMessage(`Save as video: ${e.message}`, { error: true, key: "video" }); }
  finally { $("video-save").disabled = false; }
});

// --- camera ----------------------------------------------------------------------------------
const camera = { paused: false, running: false, times: [] };
$("camera-start").addEventListener("click", async () => {
  if (!navigator.mediaDevices?.getUserMedia) { showMessage("This browser offers no camera here (it needs https or localhost).", { error: true, key: "camera" }); return; }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    const element = $("camera-video");
    element.srcObject = stream; await element.play();
    $("camera-start").disabled = true; $("camera-toggle").disabled = false;
    camera.running = true;
    cameraLoop(element);
  } catch (e) { showMessage(`Camera: ${e.message}`, { error: true, key: "camera" }); }
});

$("camera-toggle").addEventListener("click", () => {
  camera.paused = !camera.paused;
  $("camera-toggle").textContent = camera.paused ? "Play" : "Pause";
  $("camera-toggle").setAttribute("aria-pressed", String(camera.paused));
});

async function cameraLoop(element) {
  const grab = document.createElement("canvas");
  while (camera.running) {
    if (camera.paused || !element.videoWidth) { await new Promise((r) => setTimeout(r, 200)); continue; }
    const scale = Math.min(1, 640 / element.videoWidth);
    grab.width = Math.round(element.videoWidth * scale); grab.height = Math.round(element.videoHeight * scale);
    grab.getContext("2d").drawImage(element, 0, 0, grab.width, grab.height);
    const blob = await new Promise((r) => grab.toBlob(r, "image/jpeg", 0.8));
    try {
      const result = await analyse(blob);
      resize($("camera-canvas"), grab.width, grab.height);
      paint($("camera-canvas"), grab, result.detections ?? []);
      const now = performance.now();
      camera.times = [...camera.times.filter((t) => now - t < 2000), now];
      $("camera-fps").textContent = (camera.times.length / 2).toFixed(1);
      $("camera-status").textContent = `${(result.detections ?? []).length} object(s)`;
      clearMessages("camera");
    } catch (e) {
      if (e.status === 401) { camera.running = false; return; }
      showMessage(`Camera: ${e.message}`, { error: true, key: "camera" });
      await new Promise((r) => setTimeout(r, e.status === 429 || e.status === 503 ? 2000 : 1000));
    }
  }
}

showLabels.addEventListener("change", () => {
  if (image.bitmap) paint($("image-canvas"), image.bitmap, image.detections);
});
applySize();
