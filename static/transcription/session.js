// Session page: a clicked phrase plays the kept audio from there; background jobs (a translation
// after the fact) show their progress, and their results appear under each phrase as they are made.
import { playFrom } from "./playback.js";

const $ = (id) => document.getElementById(id);
const segments = $("segments");
const player = $("player");
const jobs = $("jobs");

// ---- playback ----
if (player) playFrom(player, [...segments.querySelectorAll("li.playable")]);

// ---- corrections: the owner edits a phrase; the REST API stores it and tells the live viewers ----
function csrfToken() {
  const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function save(li, input, span) {
  const error = $("edit-error");
  const response = await fetch(`${segments.dataset.api}segments/${li.dataset.segment}/`, {
    method: "PATCH",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), Accept: "application/json" },
    body: JSON.stringify({ text: input.value }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    error.textContent = `Not saved: ${(body.text || [body.detail || response.status])[0]}`;
    error.hidden = false;
    return;
  }
  error.hidden = true;
  span.textContent = body.text;
  span.dataset.text = body.text;
  span.classList.add("corrected");
  input.replaceWith(span);
  li.querySelector("button.edit").hidden = false;
}

function edit(li) {
  const span = li.querySelector(".text");
  const input = document.createElement("input");
  input.className = "edit-text";
  input.value = span.dataset.text;
  input.setAttribute("aria-label", "Corrected text");
  span.replaceWith(input);
  li.querySelector("button.edit").hidden = true;
  input.focus();
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); save(li, input, span); }
    if (e.key === "Escape") { input.replaceWith(span); li.querySelector("button.edit").hidden = false; }
  });
}
segments.querySelectorAll("button.edit").forEach((button) => button.addEventListener("click", () => edit(button.closest("li"))));

// ---- background jobs ----
function showTranslation(li, translation) {
  let box = li.querySelector(".translations");
  if (!box) {
    box = document.createElement("span");
    box.className = "translations";
    li.append(box);
  }
  let span = box.querySelector(`.translation[lang="${translation.language}"]`);
  if (!span) {
    span = document.createElement("span");
    span.className = "translation";
    span.lang = translation.language;
    const label = document.createElement("abbr");
    label.title = "translation";
    label.textContent = translation.language;
    span.append(label, " ", document.createElement("span"));
    box.append(span);
  }
  span.lastChild.textContent = translation.text;
  segments.classList.add("side-by-side");
}

function render(detail) {
  for (const job of detail.jobs) {
    const row = jobs.querySelector(`[data-job="${job.id}"]`);
    if (!row) continue;
    row.querySelector("progress").value = job.progress;
    row.querySelector(".job-status").textContent =
      job.status === "failed" ? `failed: ${job.error}` : `${job.status} · ${job.done} / ${job.total}`;
    row.dataset.status = job.status;
  }
  for (const segment of detail.segments) {
    const li = segments.querySelector(`li[data-index="${segment.index}"]`);
    if (li) segment.translations.forEach((t) => showTranslation(li, t));
  }
}

async function follow() {
  try {
    const response = await fetch(jobs.dataset.api, { headers: { Accept: "application/json" } });
    if (response.ok) {
      const detail = await response.json();
      render(detail);
      if (!detail.jobs.some((j) => j.status === "queued" || j.status === "running")) return;
    }
  } catch (err) { /* the network blinked: try again */ }
  setTimeout(follow, 1000);
}
if (jobs && jobs.querySelector('[data-status="queued"], [data-status="running"]')) follow();

// ---- the live transcript, as it was sent, instead of the refined and corrected one ----
const showLive = $("show-live");
if (showLive) {
  showLive.addEventListener("click", () => {
    const live = segments.classList.toggle("show-live");
    showLive.setAttribute("aria-pressed", String(live));
    showLive.textContent = live ? "Show the refined transcript" : "Show the live transcript";
  });
}
