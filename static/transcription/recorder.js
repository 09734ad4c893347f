// Recorder page: microphone -> AudioWorklet (PCM16 16 kHz) -> WebSocket; events -> transcript.
const root = document.getElementById("recorder");
const $ = (id) => document.getElementById(id);
const ui = {
  lang: $("lang"), start: $("start"), stop: $("stop"), state: $("state"), timer: $("timer"),
  level: $("level"), error: $("error"), finals: $("finals"), interim: $("interim"),
  transcript: $("transcript"), link: $("session-link"),
};

let ws = null, audio = null, timerId = null, startedAt = 0;

const saved = localStorage.getItem("stt.lang");
if (saved && [...ui.lang.options].some((o) => o.value === saved)) ui.lang.value = saved;
ui.lang.addEventListener("change", () => localStorage.setItem("stt.lang", ui.lang.value));

function setState(state) {
  ui.state.textContent = state;
  ui.state.dataset.state = state;
  const busy = state === "connecting" || state === "listening" || state === "finishing";
  ui.start.disabled = busy;
  ui.stop.disabled = !(state === "listening" || state === "connecting");
  ui.lang.disabled = busy;
}

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = !message;
}

function fmt(ms) {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function scrollToEnd() {
  const t = ui.transcript;
  if (t.scrollHeight - t.scrollTop - t.clientHeight < 80) t.scrollTop = t.scrollHeight;
}

function onEvent(ev) {
  switch (ev.type) {
    case "system":
      if (ev.event === "started") {
        setState("listening");
        ui.link.href = `/sessions/${ev.session}/`;
        ui.link.hidden = false;
      } else if (ev.event === "ended") {
        setState("ended");
        ws && ws.close(1000);
      }
      break;
    case "interim":
      ui.interim.textContent = ev.text;
      break;
    case "final": {
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
      break;
    }
    case "error":
      showError(`${ev.message} (${ev.code})`);
      break;
  }
  scrollToEnd();
}

async function openMicrophone() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("This browser cannot capture audio here (a secure context, https or localhost, is needed).");
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      // Raw audio: browser noise suppression and gain control clip word onsets, which Whisper needs.
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
  } catch (err) {
    if (err.name === "NotAllowedError") throw new Error("Microphone access was denied. Allow it in the browser's site settings and try again.");
    if (err.name === "NotFoundError") throw new Error("No microphone was found. Connect one and try again.");
    throw new Error(`Cannot open the microphone: ${err.message}`);
  }
  const context = new AudioContext();
  await context.audioWorklet.addModule(root.dataset.workletUrl);
  const source = context.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(context, "pcm-worklet");
  source.connect(node);
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

async function start() {
  showError("");
  setState("connecting");
  try {
    audio = await openMicrophone();
  } catch (err) {
    setState("error");
    showError(err.message);
    return;
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  ws = new WebSocket(`${scheme}://${location.host}${root.dataset.wsPath}`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => ws.send(JSON.stringify({ type: "start", lang: ui.lang.value }));
  ws.onmessage = (msg) => onEvent(JSON.parse(msg.data));
  ws.onclose = (e) => {
    closeMicrophone();
    clearInterval(timerId);
    if (e.code === 4401) showError("Your login has expired. Log in again.");
    else if (ui.state.dataset.state !== "ended") showError(`Connection closed (${e.code}).`);
    if (ui.state.dataset.state !== "ended") setState("error");
    ws = null;
  };
  audio.node.port.onmessage = ({ data }) => {
    ui.level.value = data.level;
    if (ws && ws.readyState === WebSocket.OPEN && ui.state.dataset.state === "listening") ws.send(data.pcm);
  };
  startedAt = Date.now();
  ui.timer.textContent = "0:00";
  timerId = setInterval(() => { ui.timer.textContent = fmt(Date.now() - startedAt); }, 500);
}

function stop() {
  closeMicrophone();
  clearInterval(timerId);
  if (ws && ws.readyState === WebSocket.OPEN) {
    setState("finishing");
    ws.send(JSON.stringify({ type: "end" }));
  } else {
    setState("ended");
  }
}

ui.start.addEventListener("click", start);
ui.stop.addEventListener("click", stop);
document.addEventListener("keydown", (e) => {
  if (e.code !== "Space" || e.target.closest("input, select, textarea, button, a")) return;
  e.preventDefault();
  ui.stop.disabled ? (!ui.start.disabled && start()) : stop();
});
setState("ready");
