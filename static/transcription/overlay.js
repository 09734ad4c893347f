// Captions for broadcast software: the last N lines of a live session (its viewer socket, corrections
// included), optionally each with its translation under it. Reconnects by itself.
import { CLOSE, EVENT, SYSTEM, exposeForTests } from "./protocol.js";

const root = document.getElementById("overlay");
const maxLines = Number(root.dataset.lines);
const lang = root.dataset.lang;
const lines = new Map(); // segment -> {text, translation}
let interim = "";
let retries = 0;
let reconnects = 0;
let over = false;

function line(text, className) {
  const div = document.createElement("div");
  div.className = className;
  div.textContent = text;
  return div;
}

function render() {
  const shown = [...lines.values()].map((l) => [line(l.text, "line original"), ...(l.translation ? [line(l.translation, "line translation")] : [])]);
  if (interim) shown.push([line(interim, "line original interim")]);
  root.replaceChildren(...shown.slice(-maxLines).flat());
}

function onEvent(ev) {
  switch (ev.type) {
    case EVENT.SNAPSHOT:
      lines.clear();
      ev.finals.forEach((f) => lines.set(f.segment, { text: f.text, translation: "" }));
      ev.translations.forEach((t) => { if (lines.has(t.segment) && (!lang || t.lang === lang)) lines.get(t.segment).translation = t.text; });
      interim = "";
      retries = 0;
      over = ev.status !== "active" && ev.status !== "processing";
      root.dataset.state = ev.status === "active" ? "live" : ev.status;
      break;
    case EVENT.INTERIM: interim = ev.text; break;
    case EVENT.FINAL: interim = ""; lines.set(ev.segment, { text: ev.text, translation: "" }); break;
    case EVENT.CORRECTION: if (lines.has(ev.segment)) lines.get(ev.segment).text = ev.text; break;
    case EVENT.TRANSLATION:
      if (lines.has(ev.segment) && lang && ev.lang === lang) {
        const l = lines.get(ev.segment);
        l.translation = ev.done ? ev.text : l.translation + ev.text;
      }
      break;
    case EVENT.SYSTEM:
      if (ev.event === SYSTEM.ENDED) { over = true; interim = ""; root.dataset.state = "ended"; }
      break;
  }
  while (lines.size > 50) lines.delete(lines.keys().next().value); // only the newest are ever shown
  render();
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}${root.dataset.wsPath}${lang ? `?translate_to=${encodeURIComponent(lang)}` : ""}`);
  ws.onmessage = (msg) => onEvent(JSON.parse(msg.data));
  ws.onclose = (close) => {
    if (close.code === CLOSE.FORBIDDEN) { root.dataset.state = "closed"; return; } // the link was revoked
    if (over) return;
    root.dataset.state = "reconnecting";
    reconnects++;
    setTimeout(connect, Math.min(15000, 1000 * 2 ** retries++));
  };
}

connect();
exposeForTests("overlay", { get reconnects() { return reconnects; } });
