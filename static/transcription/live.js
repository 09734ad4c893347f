// Read-only live captions: a snapshot of what is stored, then the session's events as they happen.
import { CLOSE, EVENT, REASON, SYSTEM, exposeForTests } from "./protocol.js";
import { addFinal, addTranslation, applyCorrection, applySpeaker, scrollToEnd, setSpeakerNames } from "./transcript.js";

const $ = (id) => document.getElementById(id);
const root = $("live");
const ui = { state: $("live-state"), error: $("error"), finals: $("finals"), interim: $("interim"), transcript: $("transcript") };
let retries = 0;
let reconnects = 0;
let over = false;

function setState(text) { ui.state.textContent = text; root.dataset.state = text; }
function showProgress(value) {  // an uploaded recording's transcription
  $("upload-progress").hidden = false;
  $("progress").value = value;
  $("progress-text").textContent = `${Math.round(value * 100)} %`;
}
function showError(text) { ui.error.textContent = text; ui.error.hidden = !text; }

function onEvent(ev) {
  switch (ev.type) {
    case EVENT.SNAPSHOT:
      ui.finals.replaceChildren();
      ui.interim.textContent = "";
      setSpeakerNames(ui.finals, ev.speakers || {});
      ev.finals.forEach((final) => addFinal(ui.finals, ui.interim, final));
      ev.translations.forEach((translation) => addTranslation(ui.finals, translation));
      retries = 0;
      showError("");
      if (ev.status === "active") setState("live");
      else if (ev.status === "processing") { setState("processing"); showProgress(ev.progress || 0); }
      else {
        over = true;
        setState(ev.status === "failed" ? "failed" : "ended");
        $("stop-stream")?.remove();
      }
      break;
    case EVENT.INTERIM: ui.interim.textContent = ev.text; break;
    case EVENT.FINAL: addFinal(ui.finals, ui.interim, ev); break;
    case EVENT.TRANSLATION: addTranslation(ui.finals, ev); break;
    case EVENT.CORRECTION: applyCorrection(ui.finals, ev); break;
    case EVENT.SPEAKER: applySpeaker(ui.finals, ev); break;
    case EVENT.SYSTEM:
      if (ev.event === SYSTEM.ENDED) {
        over = true;
        $("stop-stream")?.remove();  // a pulled stream's Stop button: nothing left to stop
        ui.interim.textContent = "";
        if (!$("upload-progress").hidden && ev.reason === REASON.END) showProgress(1);
        setState(ev.reason === REASON.ERROR ? "failed" : "ended");
      }
      if (ev.event === SYSTEM.PROGRESS) showProgress(ev.progress);
      if (ev.event === SYSTEM.SPEAKERS) setSpeakerNames(ui.finals, ev.names);
      break;
    case EVENT.ERROR:
      showError(`${ev.message} (${ev.code})`);
      break;
  }
  scrollToEnd(ui.transcript);
}

// The captions' language: each viewer picks one; the server translates each final once per language.
const language = $("caption-language");
const savedLanguage = localStorage.getItem("stt.captionLanguage");
if (savedLanguage && [...language.options].some((o) => o.value === savedLanguage)) language.value = savedLanguage;
let socket = null;
language.addEventListener("change", () => {
  localStorage.setItem("stt.captionLanguage", language.value);
  ui.finals.querySelectorAll(".translation").forEach((t) => t.remove());
  if (socket) { socket.onclose = null; socket.close(CLOSE.NORMAL); }
  retries = 0;
  connect(); // a fresh snapshot, with the translations stored in that language
});

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = language.value ? `?translate_to=${encodeURIComponent(language.value)}` : "";
  const ws = new WebSocket(`${scheme}://${location.host}${root.dataset.wsPath}${query}`);
  socket = ws;
  ws.onmessage = (msg) => onEvent(JSON.parse(msg.data));
  ws.onclose = (close) => {
    if (close.code === CLOSE.FORBIDDEN) {
      over = true;
      setState("closed");
      showError("This link is no longer valid (revoked or expired).");
      return;
    }
    if (over) return;
    // Dropped (network, server restart, channel layer down): back off, then a fresh snapshot.
    const delay = Math.min(15000, 1000 * 2 ** retries++);
    setState("reconnecting");
    reconnects++;
    setTimeout(connect, delay);
  };
}

connect();
// For the browser tests: how often the page had to reconnect.
exposeForTests("live", { get reconnects() { return reconnects; } });
