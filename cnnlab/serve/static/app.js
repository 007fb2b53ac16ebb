// cnnlab explorer page: plain JS over the JSON API (/api/*). No frameworks, no network beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { imageId: null, file: null, photo: null, gen: 0, model: null, explainTarget: null };

function showError(msg) {
  const box = $("error");
  box.textContent = msg;
  box.hidden = !msg;
}

// One request in flight per kind (predict, saliency, gradcam, featmaps, attack): a newer one aborts the
// older, whose connection closes, and the server stops that computation at its next step.
const inflight = {};
function freshSignal(kind) {
  if (!kind) return undefined;
  if (inflight[kind]) inflight[kind].abort();
  inflight[kind] = new AbortController();
  return inflight[kind].signal;
}
function abortAll() { for (const kind of Object.keys(inflight)) inflight[kind].abort(); }
function aborted(e) { return e && e.name === "AbortError"; }

// POST form fields to an endpoint; if the server no longer holds our image (410), send it again.
async function api(path, fields, kind, retry = true) {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) if (v !== null && v !== undefined && v !== "") form.append(k, v);
  if (!("image" in fields) && !("photo" in fields)) form.append("image_id", state.imageId || "");
  const signal = retry ? freshSignal(kind) : (inflight[kind] || {}).signal;
  const resp = await fetch(path, { method: "POST", body: form, headers: { "X-Cnnlab": "1" }, signal });
  const body = await resp.json().catch(() => ({ error: `The server answered ${resp.status} without JSON.` }));
  if (resp.status === 410 && retry && (state.file || state.photo)) {
    const again = await api("/api/predict", state.file ? { image: state.file } : { photo: state.photo }, kind, false);
    state.imageId = again.image_id;
    return api(path, fields, kind, false);
  }
  if (!resp.ok) throw new Error(body.error || `Request failed (${resp.status}).`);
  return body;
}

async function getJSON(path) {
  const resp = await fetch(path);
  const body = await resp.json();
  if (!resp.ok) throw new Error(body.error || `Request failed (${resp.status}).`);
  return body;
}

function pct(p) { return (100 * p).toFixed(p >= 0.1 ? 1 : 2) + "%"; }

function renderBars(list, preds, onPick, chosen) {
  list.replaceChildren();
  for (const p of preds) {
    const li = document.createElement("li");
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = Math.max(0.5, 100 * p.prob).toFixed(1) + "%";
    const text = document.createElement("span");
    text.className = "text";
    const name = document.createElement("span");
    name.className = "label";
    name.textContent = p.label;
    const prob = document.createElement("span");
    prob.className = "prob";
    prob.textContent = pct(p.prob);
    text.append(name, prob);
    li.append(bar, text);
    li.dataset.index = p.index;
    if (chosen === p.index) li.classList.add("chosen");
    if (onPick) li.addEventListener("click", () => onPick(p));
    list.append(li);
  }
}

function ms(el, body) { $(el).textContent = body && body.ms !== undefined ? `${Math.round(body.ms)} ms` : ""; }

function setImg(id, src) {
  const img = $(id);
  img.src = src;
  img.classList.toggle("small", !!(state.model && Math.max(...state.model.input_size) < 96));
}

// -- choosing an image -------------------------------------------------------------------------
async function useImage(fields, caption) {
  const gen = ++state.gen;
  abortAll();
  showError("");
  $("predictions").replaceChildren(Object.assign(document.createElement("li"), { className: "muted placeholder", textContent: "predicting…" }));
  try {
    const res = await api("/api/predict", fields, "predict");
    if (gen !== state.gen) return;
    state.imageId = res.image_id;
    state.explainTarget = null;
    setImg("input-img", res.input);
    $("input-figure").hidden = false;
    $("input-caption").textContent = `${caption} — as the model sees it (${state.model.input_size.join("×")})`;
    ms("predict-ms", res);
    renderBars($("predictions"), res.top, (p) => { state.explainTarget = p.index; explainAll(); markChosen(); }, res.top[0].index);
    explainAll();
    featmaps();
  } catch (e) {
    if (gen === state.gen && !aborted(e)) { showError(e.message); $("predictions").replaceChildren(); }
  }
}

function markChosen() {
  for (const li of $("predictions").children) li.classList.toggle("chosen", Number(li.dataset.index) === state.explainTarget);
}

// -- explanations, feature maps, attacks ------------------------------------------------------------
async function explainOne(method, imgId, msId, extra) {
  const gen = state.gen;
  const fields = { method, ...extra };
  if (state.explainTarget !== null) fields.target = String(state.explainTarget);
  try {
    const res = await api("/api/explain", fields, method === "gradcam" ? "gradcam" : "saliency");
    if (gen !== state.gen) return;
    setImg(imgId, res.overlay);
    ms(msId, res);
    $("explain-target").textContent = `for “${res.target.label}”`;
  } catch (e) { if (gen === state.gen && !aborted(e)) showError(e.message); }
}

function explainAll() {
  if (!state.imageId) return;
  explainOne($("saliency-method").value, "saliency-img", "saliency-ms", {});
  explainOne("gradcam", "gradcam-img", "gradcam-ms", { layer: $("gradcam-layer").value });
}

async function featmaps() {
  if (!state.imageId) return;
  const gen = state.gen;
  try {
    const res = await api("/api/featmaps", { layer: $("featmaps-layer").value, k: $("featmaps-k").value }, "featmaps");
    if (gen !== state.gen) return;
    $("featmaps-img").src = res.grid;
    ms("featmaps-ms", res);
    $("featmaps-info").textContent = `${res.layer}: ${res.channels.length} most active channels of size ${res.size.join("×")} (channels ${res.channels.join(", ")})`;
  } catch (e) { if (gen === state.gen && !aborted(e)) showError(e.message); }
}

function attackInfo() {
  return (state.model.attack_methods || []).find((a) => a.name === $("attack-method").value) || {};
}

function isL2() { return $("attack-method").value.endsWith("-l2"); }

// ε is in grey levels (n/255) for L∞ attacks and an L2 radius for the -l2 ones
function epsText() { const v = Number($("attack-eps").value); return isL2() ? v.toFixed(2) : `${v}/255`; }

function onMethod() {
  const info = attackInfo();
  const eps = $("attack-eps");
  const wasL2 = eps.dataset.l2 === "1";
  if (isL2() !== wasL2) {
    Object.assign(eps, isL2() ? { min: 0.05, max: 3, step: 0.05 } : { min: 0.5, max: 32, step: 0.5 });
    eps.value = isL2() ? 0.5 : 4;
    eps.dataset.l2 = isL2() ? "1" : "0";
  }
  $("attack-eps-out").textContent = epsText() + (isL2() ? " (L2)" : "");
  const target = $("attack-target");
  target.disabled = info.takes_target === false;
  if (target.disabled) target.value = "";
  target.placeholder = info.needs_target ? "required — type to search" : (target.disabled ? "untargeted method" : "none (untargeted) — type to search");
}

async function attack(ev) {
  ev.preventDefault();
  if (!state.imageId) { showError("Choose an image first."); return; }
  const gen = state.gen;
  const button = $("attack-run");
  button.disabled = true;
  $("attack-status").textContent = "attacking…";
  showError("");
  try {
    const res = await api("/api/attack", { method: $("attack-method").value, eps: epsText(),
      steps: $("attack-steps").value, target: $("attack-target").value.trim() }, "attack");
    if (gen !== state.gen) return;
    setImg("adv-img", res.adversarial);
    setImg("pert-img", res.perturbation);
    $("pert-caption").textContent = res.magnify ? `perturbation ×${res.magnify} (L∞ = ${res.linf_255}/255, L2 = ${res.l2.toFixed(3)})` : "no change";
    renderBars($("adv-predictions"), res.top, null, res.final.index);
    const status = $("attack-status");
    status.replaceChildren();
    const verdict = Object.assign(document.createElement("span"), { className: res.success ? "ok" : "no",
      textContent: res.success ? "fooled" : "not fooled" });
    const goal = res.target ? ` towards “${res.target.label}”` : "";
    status.append(verdict, ` — ${res.method}${goal}: “${res.original.label}” (${pct(res.original.prob)}) → “${res.final.label}” (${pct(res.final.prob)}) after ${res.steps} step(s), ${Math.round(res.ms)} ms; saved as an 8-bit PNG it reads “${res.saved_png.label}” (${pct(res.saved_png.prob)})`);
  } catch (e) {
    if (gen === state.gen && !aborted(e)) { showError(e.message); $("attack-status").textContent = ""; }
  } finally { button.disabled = false; }
}

let searchTimer = null;
function searchClasses() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(async () => {
    const q = $("attack-target").value.trim();
    try {
      const res = await getJSON(`/api/classes?q=${encodeURIComponent(q)}&limit=30`);
      $("class-options").replaceChildren(...res.classes.map((c) => Object.assign(document.createElement("option"), { value: c.label, textContent: `#${c.index}` })));
    } catch (e) { showError(e.message); }
  }, 120);
}

function fillSelect(sel, values, chosen) {
  sel.replaceChildren(...values.map((v) => Object.assign(document.createElement("option"), { value: v, textContent: v })));
  if (chosen !== undefined && values.includes(chosen)) sel.value = chosen;
}

async function init() {
  try {
    const model = await getJSON("/api/model");
    state.model = model;
    $("model-info").textContent = `${model.name} · ${model.num_classes} classes · input ${model.input_size.join("×")} · ${(model.params / 1e6).toFixed(2)} M parameters`;
    fillSelect($("saliency-method"), model.explain_methods.filter((m) => m !== "gradcam"), "gradient");
    const layers = ["late", "middle", "early", ...model.layers];
    fillSelect($("gradcam-layer"), layers, "late");
    fillSelect($("featmaps-layer"), ["early", "middle", "late", ...model.layers], "middle");
    fillSelect($("attack-method"), model.attack_methods.map((a) => a.name), "pgd");
    onMethod();
    $("attack-steps").max = model.max_steps;
    const photos = await getJSON("/api/photos");
    for (const p of photos.photos) {
      const b = document.createElement("button");
      b.type = "button";
      b.title = p.name;
      b.dataset.photo = p.name;
      b.append(Object.assign(document.createElement("img"), { src: p.thumb, alt: p.name }));
      b.addEventListener("click", () => {
        for (const o of $("photos").children) o.classList.toggle("selected", o === b);
        state.file = null; state.photo = p.name;
        useImage({ photo: p.name }, p.name);
      });
      $("photos").append(b);
    }
  } catch (e) { showError(`Could not load the model description: ${e.message}`); }
}

function onFile(file) {
  if (!file) return;
  for (const o of $("photos").children) o.classList.remove("selected");
  state.file = file; state.photo = null;
  useImage({ image: file }, file.name);
}

document.addEventListener("DOMContentLoaded", () => {
  init();
  $("file").addEventListener("change", (e) => onFile(e.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); onFile(e.dataTransfer.files[0]); });
  $("saliency-method").addEventListener("change", () => state.imageId && explainOne($("saliency-method").value, "saliency-img", "saliency-ms", {}));
  $("gradcam-layer").addEventListener("change", () => state.imageId && explainOne("gradcam", "gradcam-img", "gradcam-ms", { layer: $("gradcam-layer").value }));
  $("featmaps-layer").addEventListener("change", featmaps);
  $("featmaps-k").addEventListener("change", featmaps);
  $("attack-eps").addEventListener("input", () => { $("attack-eps-out").textContent = epsText() + (isL2() ? " (L2)" : ""); });
  $("attack-method").addEventListener("change", onMethod);
  $("attack-target").addEventListener("input", searchClasses);
  $("attack-form").addEventListener("submit", attack);
  searchClasses();
});
