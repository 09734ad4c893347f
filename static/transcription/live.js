// Read-only live captions: a snapshot of what is stored, then the session's events as they happen.
const $ = (id) => document.getElementById(id);
const root = $("live");
const ui = { state: $("live-state"), error: $("error"), finals: $("finals"), interim: $("interim"), transcript: $("transcript") };
let retries = 0;
let over = false;

function fmt(ms) {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function setState(text) { ui.state.textContent = text; root.dataset.state = text; }
function showError(text) { ui.error.textContent = text; ui.error.hidden = !text; }

function addFinal(ev) {
  if (ui.finals.querySelector(`li[data-segment="${ev.segment}"]`)) return; // already in the snapshot
  const li = document.createElement("li");
  li.dataset.segment = ev.segment;
  const time = document.createElement("time");
  time.textContent = fmt(ev.start_ms);
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = ev.text;
  li.append(time, " ", text);
  ui.finals.append(li);
  ui.interim.textContent = "";
}

function addTranslation(ev) {
  const li = ui.finals.querySelector(`li[data-segment="${ev.segment}"]`);
  if (!li) return;
  let div = li.querySelector(".translation");
  if (!div) {
    div = document.createElement("div");
    div.className = "translation";
    div.lang = ev.lang;
    li.append(div);
  }
  div.textContent = ev.done ? ev.text : div.textContent + ev.text;
}

function onEvent(ev) {
  switch (ev.type) {
    case "snapshot":
      ui.finals.replaceChildren();
      ui.interim.textContent = "";
      ev.finals.forEach(addFinal);
      ev.translations.forEach(addTranslation);
      retries = 0;
      showError("");
      if (ev.status === "active") setState("live");
      else { over = true; setState("ended"); }
      break;
    case "interim": ui.interim.textContent = ev.text; break;
    case "final": addFinal(ev); break;
    case "translation": addTranslation(ev); break;
    case "system":
      if (ev.event === "ended") { over = true; ui.interim.textContent = ""; setState("ended"); }
      break;
    case "error":
      showError(`${ev.message} (${ev.code})`);
      break;
  }
  const t = ui.transcript;
  if (t.scrollHeight - t.scrollTop - t.clientHeight < 80) t.scrollTop = t.scrollHeight;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}${root.dataset.wsPath}`);
  ws.onmessage = (msg) => onEvent(JSON.parse(msg.data));
  ws.onclose = (close) => {
    if (close.code === 4403) {
      over = true;
      setState("closed");
      showError("This link is no longer valid (revoked or expired).");
      return;
    }
    if (over) return;
    // Dropped (network, server restart, channel layer down): back off, then a fresh snapshot.
    const delay = Math.min(15000, 1000 * 2 ** retries++);
    setState("reconnecting");
    setTimeout(connect, delay);
  };
}

connect();
