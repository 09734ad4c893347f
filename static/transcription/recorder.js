// Recorder page: microphone -> AudioWorklet (PCM16 16 kHz) -> WebSocket; events -> transcript.
// If the socket drops, it reconnects and resumes the same session (protocol v2 "resume"),
// buffering up to MAX_PENDING_FRAMES of audio meanwhile; if the session is gone, it starts anew.
import { CLOSE, CODE, EVENT, REASON, SYSTEM, exposeForTests } from "./protocol.js";
import { addFinal, addTranslation, applyCorrection, applySpeaker, fmt, scrollToEnd, setSpeakerNames } from "./transcript.js";

const MAX_PENDING_FRAMES = 50; // 5 s of 100 ms frames
const root = document.getElementById("recorder");
const $ = (id) => document.getElementById(id);
const ui = {
  lang: $("lang"), translateTo: $("translate-to"), source: $("source"), start: $("start"), stop: $("stop"), finalize: $("finalize"), state: $("state"),
  timer: $("timer"), lag: $("lag"), level: $("level"), error: $("error"), notice: $("notice"),
  finals: $("finals"), interim: $("interim"), transcript: $("transcript"), link: $("session-link"),
};

let ws = null, audio = null, timerId = null, startedAt = 0;
let sessionId = null, lastSeq = 0, stopping = false, retries = 0, retryTimer = null;
let pending = []; // audio frames captured while the socket is not ready

// The language, translate-to and source choices are remembered between visits.
for (const [select, key] of [[ui.lang, "stt.lang"], [ui.translateTo, "stt.translateTo"], [ui.source, "stt.source"]]) {
  const saved = localStorage.getItem(key);
  if (saved !== null && [...select.options].some((o) => o.value === saved)) select.value = saved;
  select.addEventListener("change", () => localStorage.setItem(key, select.value));
}

function setState(state) {
  ui.state.textContent = state;
  ui.state.dataset.state = state;
  const active = ["connecting", "listening", "reconnecting", "finishing"].includes(state);
  ui.start.disabled = active;
  ui.stop.disabled = !active || state === "finishing";
  ui.finalize.disabled = state !== "listening";
  ui.lang.disabled = active;
  ui.translateTo.disabled = active;
  ui.source.disabled = active;
  if (state !== "listening") ui.lag.hidden = true;
}

function showError(message) { ui.error.textContent = message; ui.error.hidden = !message; }
function showNotice(message) { ui.notice.textContent = message; ui.notice.hidden = !message; }

function flushPending() {
  while (pending.length && ws && ws.readyState === WebSocket.OPEN) ws.send(pending.shift());
}

function onEvent(ev) {
  if (typeof ev.seq === "number") lastSeq = Math.max(lastSeq, ev.seq);
  switch (ev.type) {
    case EVENT.SYSTEM:
      if (ev.event === SYSTEM.STARTED || ev.event === SYSTEM.RESUMED) {
        if (ev.event === SYSTEM.STARTED && sessionId && ev.session !== sessionId) {
          showNotice("The connection was lost for too long: a new session was started. What was shown is kept.");
        } else if (ev.event === SYSTEM.RESUMED) {
          showNotice("Reconnected: the session goes on.");
        }
        if (ev.event === SYSTEM.STARTED) lastSeq = ev.seq;
        sessionId = ev.session;
        retries = 0;
        setState("listening");
        ui.link.href = `/sessions/${ev.session}/`;
        ui.link.hidden = false;
        flushPending();
      } else if (ev.event === SYSTEM.ENDED && ev.reason === REASON.MAX_LENGTH && !stopping) {
        setState("connecting"); // the session reached its length limit: go on in a new one
        showNotice("The session reached its maximum length; a new one continues.");
        ws.send(JSON.stringify(startMessage()));
      } else if (ev.event === SYSTEM.ENDED && ev.reason === REASON.SHUTDOWN && !stopping) {
        sessionId = null; // that server is going away: its transcript is saved; go on in a new session
        showNotice("The server restarted: what was said is saved, and a new session continues.");
        setState("reconnecting");
        ws.close(CLOSE.NORMAL); // onclose reconnects (possibly to another server) and starts anew
      } else if (ev.event === SYSTEM.ENDED) {
        setState("ended");
        sessionId = null;
        ws && ws.close(CLOSE.NORMAL);
      } else if (ev.event === SYSTEM.SPEAKERS) {
        setSpeakerNames(ui.finals, ev.names);
      } else if (ev.event === SYSTEM.LAG) {
        ui.lag.hidden = ev.seconds <= 0;
        ui.lag.textContent = `behind by ${ev.seconds.toFixed(1)} s`;
      }
      break;
    case EVENT.INTERIM:
      ui.interim.textContent = ev.text;
      break;
    case EVENT.FINAL:
      addFinal(ui.finals, ui.interim, ev);
      break;
    case EVENT.TRANSLATION:
      addTranslation(ui.finals, ev);
      break;
    case EVENT.CORRECTION:
      applyCorrection(ui.finals, ev);
      break;
    case EVENT.SPEAKER:
      applySpeaker(ui.finals, ev);
      break;
    case EVENT.ERROR:
      if (ev.code === CODE.SESSION_EXPIRED) {
        ws.send(JSON.stringify(startMessage())); // carry on in a new session
      } else if (ev.code === CODE.TRANSLATION_FAILED) {
        showNotice("A phrase could not be translated; the transcript is kept.");
      } else {
        showError(`${ev.message} (${ev.code})`);
      }
      break;
  }
  scrollToEnd(ui.transcript);
}

// Raw audio: browser noise suppression and gain control clip word onsets, which Whisper needs.
const RAW = { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false };

async function microphoneStream() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("This browser cannot capture audio here (a secure context, https or localhost, is needed).");
  }
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: RAW });
  } catch (err) {
    if (err.name === "NotAllowedError") throw new Error("Microphone access was denied. Allow it in the browser's site settings and try again.");
    if (err.name === "NotFoundError") throw new Error("No microphone was found. Connect one and try again.");
    throw new Error(`Cannot open the microphone: ${err.message}`);
  }
}

// A tab's audio (a meeting, a video playing elsewhere), or the whole system's where the browser
// offers it: Chrome and Edge share a tab's audio (tick "Share tab audio"), and the system's on
// Windows and ChromeOS; Firefox and Safari share no audio at all.
async function tabStream() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getDisplayMedia) {
    throw new Error("This browser cannot share a tab's audio (Chrome or Edge can).");
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: RAW, systemAudio: "include" });
  } catch (err) {
    if (err.name === "NotAllowedError") throw new Error("Sharing was cancelled.");
    throw new Error(`Cannot share a tab: ${err.message}`);
  }
  stream.getVideoTracks().forEach((t) => t.stop()); // only its sound is used
  if (stream.getAudioTracks().length === 0) {
    throw new Error("No audio came with what you shared: choose a tab and tick \"Share tab audio\" (Chrome or Edge).");
  }
  stream.getAudioTracks()[0].addEventListener("ended", () => { if (audio) stop(); }); // the user stopped sharing
  return stream;
}

async function openMicrophone() {
  const stream = ui.source.value === "tab" ? await tabStream() : await microphoneStream();
  const context = new AudioContext();
  await context.audioWorklet.addModule(root.dataset.workletUrl);
  const source = context.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(context, "pcm-worklet");
  source.connect(node);
  node.port.onmessage = ({ data }) => {
    ui.level.value = data.level;
    if (ws && ws.readyState === WebSocket.OPEN && ui.state.dataset.state === "listening") {
      ws.send(data.pcm);
    } else if (ui.state.dataset.state === "reconnecting" || ui.state.dataset.state === "connecting") {
      pending.push(data.pcm);
      if (pending.length > MAX_PENDING_FRAMES) pending.shift();
    }
  };
  return { stream, context, source, node };
}

function closeMicrophone() {
  if (!audio) return;
  audio.node.port.onmessage = null;
  audio.source.disconnect();
  audio.node.disconnect();
  audio.stream.getTracks().forEach((t) => t.stop());
  audio.context.close();
  audio = null;
  ui.level.value = 0;
}

function startMessage() {
  const message = { type: "start", lang: ui.lang.value };
  if (ui.translateTo.value) message.translate_to = ui.translateTo.value;
  return message;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  ws = new WebSocket(`${scheme}://${location.host}${root.dataset.wsPath}`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    const message = sessionId
      ? { type: "resume", session: sessionId, last_seq: lastSeq }
      : startMessage();
    ws.send(JSON.stringify(message));
  };
  ws.onmessage = (msg) => onEvent(JSON.parse(msg.data));
  ws.onclose = (e) => {
    ws = null;
    const state = ui.state.dataset.state;
    if (state === "ended") return;
    if (e.code === CLOSE.UNAUTHENTICATED) return fail("Your login has expired. Log in again.");
    if (e.code === CLOSE.REPLACED) return fail("This session was taken over by another window.");
    if (stopping || state === "finishing") return fail(`Connection closed before the session ended (${e.code}).`);
    // Unexpected drop while recording: reconnect and resume.
    setState("reconnecting");
    showNotice("Connection lost: reconnecting…");
    const delay = Math.min(5000, 500 * 2 ** retries++);
    retryTimer = setTimeout(connect, delay);
  };
}

function fail(message) {
  closeMicrophone();
  clearInterval(timerId);
  showError(message);
  setState("error");
  sessionId = null;
}

async function start() {
  showError("");
  showNotice("");
  setState("connecting");
  stopping = false;
  sessionId = null;
  lastSeq = 0;
  pending = [];
  try {
    audio = await openMicrophone();
  } catch (err) {
    setState("error");
    showError(err.message);
    return;
  }
  connect();
  startedAt = Date.now();
  ui.timer.textContent = "0:00";
  timerId = setInterval(() => { ui.timer.textContent = fmt(Date.now() - startedAt); }, 500);
}

function stop() {
  stopping = true;
  clearTimeout(retryTimer);
  closeMicrophone();
  clearInterval(timerId);
  if (ws && ws.readyState === WebSocket.OPEN && sessionId) {
    setState("finishing");
    flushPending();
    ws.send(JSON.stringify({ type: "end" }));
  } else {
    if (ws) ws.close(CLOSE.NORMAL);
    setState("ended");
  }
}

function finalize() {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "finalize" }));
}

ui.start.addEventListener("click", start);
ui.stop.addEventListener("click", stop);
ui.finalize.addEventListener("click", finalize);
document.addEventListener("keydown", (e) => {
  if (e.code !== "Space" || e.target.closest("input, select, textarea, button, a")) return;
  e.preventDefault();
  ui.stop.disabled ? (!ui.start.disabled && start()) : stop();
});
setState("ready");
// For the browser tests: the live socket (closing it simulates a dropped network) and the session.
exposeForTests("recorder", { get socket() { return ws; }, get session() { return sessionId; } });
