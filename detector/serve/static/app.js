// Upload page for the deepfake detector: upload with progress (XMLHttpRequest, since fetch reports no upload
// progress), poll the scan, then show what report.html shows. Every value from the server is inserted with
// textContent or as an attribute, never as HTML, because file names and messages come from users.
"use strict";

const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);
let maxUploadBytes = null;
let currentId = null;
let pollTimer = null;

// a fact as a reader wants it: yes/no rather than true/false, a dash for nothing (as report.html shows it)
function factText(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "boolean") return value ? "yes" : "no";
  return value;
}

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

function fmtProb(p) {
  return p === null || p === undefined ? "–" : Number(p).toFixed(3);
}

function fmtBytes(n) {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1e3))} kB`;
}

function show(id, visible) {
  $(id).hidden = !visible;
}

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

async function loadHealth() {
  try {
    const health = await getJSON("/api/health");
    maxUploadBytes = health.max_upload_bytes;
    $("limit-note").textContent = `Up to ${fmtBytes(maxUploadBytes)}; ${health.frames} frames are sampled per video.`;
    const m = health.model;
    $("model-note").textContent = `Model: ${m.name} v${m.version} (${m.backbone})` +
      (m.trained ? "" : " — untrained: verdicts are provisional");
  } catch (err) {
    $("model-note").textContent = `Server not reachable: ${err.message}`;
  }
}

function uploadError(message) {
  $("upload-error").textContent = message;
  show("upload-error", Boolean(message));
}

function upload(file) {
  uploadError("");
  if (!file) return;
  if (file.size === 0) return uploadError(`${file.name}: empty file`);
  if (maxUploadBytes !== null && file.size > maxUploadBytes) {
    return uploadError(`${file.name} is ${fmtBytes(file.size)}; the limit is ${fmtBytes(maxUploadBytes)}.`);
  }
  const form = new FormData();
  form.append("file", file, file.name);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/scans");
  xhr.responseType = "json";
  $("upload-label").textContent = `Uploading ${file.name}`;
  $("upload-progress").value = 0;
  $("upload-percent").textContent = "0 %";
  show("upload-status", true);
  xhr.upload.onprogress = (event) => {
    if (!event.lengthComputable) return;
    const percent = Math.round((100 * event.loaded) / event.total);
    $("upload-progress").value = percent;
    $("upload-percent").textContent = `${percent} %`;
  };
  xhr.onload = () => {
    show("upload-status", false);
    const body = xhr.response || {};
    if (xhr.status !== 202) return uploadError(body.error || `upload failed (${xhr.status})`);
    $("file-input").value = "";
    openScan(body.id);
    loadRecent();
  };
  xhr.onerror = () => {
    show("upload-status", false);
    uploadError("upload failed: the server closed the connection (is the file over the size limit?)");
  };
  xhr.send(form);
}

function openScan(id) {
  currentId = id;
  if (location.hash !== `#scan=${id}`) history.replaceState(null, "", `#scan=${id}`);
  clearTimeout(pollTimer);
  show("scan", true);
  show("result", false);
  show("scan-error", false);
  $("scan-name").textContent = "…";
  $("scan-state").textContent = "Loading…";
  for (const row of document.querySelectorAll("#recent tbody tr")) {
    row.classList.toggle("selected", row.dataset.id === id);
  }
  poll(id);
}

async function poll(id) {
  if (id !== currentId) return;
  let scan;
  try {
    scan = await getJSON(`/api/scans/${encodeURIComponent(id)}`);
  } catch (err) {
    $("scan-state").textContent = `Could not read the scan: ${err.message}`;
    return;
  }
  if (id !== currentId) return;
  $("scan-name").textContent = scan.filename;
  const progress = scan.progress || { done: 0, total: 0 };
  if (scan.status === "queued" || scan.status === "running") {
    const frames = progress.total ? `, frame ${progress.done} of ${progress.total}` : "";
    $("scan-state").textContent = scan.status === "queued" ? "Waiting for the scanner…" : `Scanning${frames}…`;
    $("scan-progress").max = progress.total || 1;
    $("scan-progress").value = progress.done;
    show("scan-progress", true);
    pollTimer = setTimeout(() => poll(id), POLL_MS);
    return;
  }
  show("scan-progress", false);
  $("scan-state").textContent = scan.status === "done" ? `Finished ${scan.finished}` : "The scan failed.";
  if (scan.error) {
    $("scan-error").textContent = scan.error;
    show("scan-error", true);
  }
  if (scan.result) renderResult(scan, scan.result);
  loadRecent();
}

function renderResult(scan, doc) {
  const files = scan.links.files;
  const verdict = $("verdict");
  verdict.textContent = doc.verdict.replace("_", " ");
  verdict.className = `verdict verdict-${doc.verdict}`;
  // what validly signed credentials say (AI-made, edited) belongs beside the pixel verdict, not below it
  if (doc.provenance && doc.provenance.headline) {
    verdict.append(" ", el("span", `· ${doc.provenance.headline}`, { class: "headline-credentials" }));
  }
  $("probability").textContent = doc.fake_probability === null
    ? `No score (threshold ${fmtProb(doc.threshold)}).`
    : `Fake probability ${fmtProb(doc.fake_probability)} (threshold ${fmtProb(doc.threshold)}; the score is the ` +
      "most suspicious face's)." +
      // how rare the score is among the real videos the threshold was chosen on (absent without reference reals)
      (doc.false_positive_rate_at_score == null ? "" :
        ` ${Math.round(doc.false_positive_rate_at_score * 100)}% of the ${doc.reference_real_videos} real videos ` +
        "the threshold was chosen on score this high or higher.");

  renderCredentials(doc.provenance);

  const warnings = $("warnings");
  warnings.replaceChildren(...doc.warnings.map((w) => el("p", w, { class: "warn" })));

  $("report-link").href = scan.links.report;
  $("json-link").href = `${files}result.json`;

  show("timeline-block", Boolean(doc.timeline));
  if (doc.timeline) $("timeline").src = `${files}${doc.timeline}`;

  const body = $("tracks").querySelector("tbody");
  body.replaceChildren();
  for (const track of doc.tracks) {
    const times = track.frames.map((f) => f.time);
    const seen = doc.video && doc.video.is_image ? "still image"
      : `${Math.min(...times).toFixed(2)}–${Math.max(...times).toFixed(2)} s`;
    const row = el("tr");
    row.append(el("td", `Face ${track.track_id}`), el("td", fmtProb(track.fake_probability)),
      el("td", track.frames.length), el("td", seen),
      el("td", track.frames.map((f) => fmtProb(f.fake_probability)).join(" ")));
    body.append(row);
  }
  show("tracks", doc.tracks.length > 0);
  show("no-faces", doc.tracks.length === 0);

  const heatmaps = $("heatmaps");
  heatmaps.replaceChildren();
  for (const cam of doc.gradcam) {
    const figure = el("figure");
    const img = el("img", null, { src: `${files}${cam.overlay}`, class: "heatmap",
      alt: `Grad-CAM of face ${cam.track_id} at ${cam.time} s` });
    figure.append(img, el("figcaption", `face ${cam.track_id}, t=${cam.time} s, p=${fmtProb(cam.fake_probability)}`));
    heatmaps.append(figure);
  }
  show("heatmap-block", doc.gradcam.length > 0);

  const facts = $("facts").querySelector("tbody");
  facts.replaceChildren();
  const rows = doc.video ? Object.entries(doc.video) : [];
  rows.push(["frames sampled", doc.frames_sampled]);
  for (const [key, value] of rows) {
    const row = el("tr");
    row.append(el("th", key), el("td", factText(value)));
    facts.append(row);
  }
  const m = doc.model;
  $("model-facts").textContent = `Model ${m.name} v${m.version} (${m.backbone}), ` +
    `${m.trained ? "trained" : "untrained: verdicts are provisional"}; threshold from ${m.threshold_source}.`;
  show("result", true);
}

// Content credentials beside the verdict: the one-line statement, metadata markers, and the details as rows.
function renderCredentials(prov) {
  show("credentials", Boolean(prov));
  if (!prov) return;
  const summary = $("credentials-summary");
  summary.textContent = prov.summary;
  summary.className = prov.validation === "tampered" || prov.validation === "invalid" ? "alarm" : "";
  $("credentials-metadata").textContent = prov.metadata_summary || "";
  show("credentials-metadata", Boolean(prov.metadata_summary));
  const rows = [];
  if (prov.status === "present") {
    const generator = [prov.claim_generator, prov.claim_generator_version].filter(Boolean).join(" ");
    const verified = prov.signer_verified ? "yes (on the trusted-signer list)" : "no (not on a trusted-signer list)";
    rows.push(["made with (claim generator)", generator], ["signer", prov.signer],
      ["signing certificate", prov.signer_subject], ["certificate issued by", prov.signer_issuer],
      ["signer verified", verified],
      ["signing time", prov.signing_time || "not stated (no trusted timestamp)"],
      ["validation", prov.validation_words]);
    for (const code of prov.validation_codes) rows.push(["validation code", `${code.code}: ${code.words}`]);
    for (const action of prov.actions) {
      const facts = [action.software && `software ${action.software}`, action.when && `at ${action.when}`];
      const what = action.source ? `${action.words} (${action.source})` : action.words;
      rows.push(["action", [what, ...facts.filter(Boolean)].join(", ")]);
    }
    for (const ing of prov.ingredients) {
      const facts = [ing.title || "untitled", `(${ing.relationship || "ingredient"})`,
        ing.has_credentials ? "with its own credentials" : "without credentials", ing.source && `— ${ing.source}`,
        ing.problems.length ? `— problems: ${ing.problems.join("; ")}` : ""];
      rows.push(["ingredient", facts.filter(Boolean).join(" ")]);
    }
  }
  for (const marker of prov.metadata) {
    rows.push([`metadata: ${marker.where} ${marker.field}`, `${marker.value} — ${marker.meaning}`]);
  }
  for (const note of prov.notes) rows.push(["note", note]);
  const body = $("credentials-facts").querySelector("tbody");
  body.replaceChildren(...rows.map(([key, value]) => {
    const row = el("tr");
    row.append(el("th", key), el("td", value || "–"));
    return row;
  }));
  show("credentials-details", rows.length > 0);
}

async function loadRecent() {
  let list;
  try {
    list = await getJSON("/api/scans?limit=50");
  } catch (err) {
    return;
  }
  const body = $("recent").querySelector("tbody");
  body.replaceChildren();
  for (const scan of list.scans) {
    const row = el("tr", null, { "data-id": scan.id });
    row.append(el("td", scan.filename), el("td", scan.status), el("td", scan.verdict || "–"),
      el("td", fmtProb(scan.fake_probability)), el("td", scan.credentials || "–"),
      el("td", scan.created.replace("T", " ").replace("+00:00", " UTC")));
    row.classList.toggle("selected", scan.id === currentId);
    row.addEventListener("click", () => openScan(scan.id));
    body.append(row);
  }
  show("recent", list.scans.length > 0);
  show("recent-empty", list.scans.length === 0);
  if (list.scans.some((s) => s.status === "queued" || s.status === "running")) {
    clearTimeout(loadRecent.timer);
    loadRecent.timer = setTimeout(loadRecent, 3 * POLL_MS);
  }
}

function setUp() {
  const zone = $("drop-zone");
  $("file-input").addEventListener("change", (event) => upload(event.target.files[0]));
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    zone.addEventListener(name, () => zone.classList.remove("dragging"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    upload(event.dataTransfer.files[0]);
  });
  loadHealth();
  loadRecent();
  const match = /^#scan=([0-9a-f]{32})$/.exec(location.hash);
  if (match) openScan(match[1]);
}

document.addEventListener("DOMContentLoaded", setUp);
