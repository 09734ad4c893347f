// Transcript rendering shared by the recorder and the live viewer page.

export function fmt(ms) {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

// Speakers: a colour per label (S1, S2, ...) and the names the owner gave them.
let speakerNames = {};
function speakerChip(label) {
  const chip = document.createElement("span");
  chip.className = "speaker";
  chip.dataset.speaker = label;
  chip.dataset.colour = String(((Number(label.slice(1)) || 1) - 1) % 8 + 1);
  chip.textContent = speakerNames[label] || label;
  return chip;
}
export function setSpeakerNames(finals, names) {
  speakerNames = { ...names };
  finals.querySelectorAll(".speaker[data-speaker]").forEach((chip) => {
    chip.textContent = speakerNames[chip.dataset.speaker] || chip.dataset.speaker;
  });
}

// A final becomes a line of the list (once: replays after resume or snapshot are skipped).
export function addFinal(finals, interim, ev) {
  if (finals.querySelector(`li[data-segment="${ev.segment}"]`)) return;
  const li = document.createElement("li");
  li.dataset.segment = ev.segment;
  const time = document.createElement("time");
  time.textContent = fmt(ev.start_ms);
  const text = document.createElement("span");
  text.className = ev.corrected ? "text corrected" : "text";
  if (ev.doubtful) {  // not in the session's language, even decoded again: the reader checks it
    text.classList.add("doubtful");
    text.title = "Not in the session's language: the recogniser may have translated it";
  }
  text.textContent = ev.text;
  li.append(time, " ");
  if (ev.speaker) li.append(speakerChip(ev.speaker), " ");
  li.append(text);
  finals.append(li);
  interim.textContent = "";
}

// Translation deltas stream in under their final; the closing event carries the whole stored text.
export function addTranslation(finals, ev) {
  const li = finals.querySelector(`li[data-segment="${ev.segment}"]`);
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

// Follow new text unless the reader scrolled up.
export function scrollToEnd(transcript) {
  if (transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 80) {
    transcript.scrollTop = transcript.scrollHeight;
  }
}

// The owner corrected a final: its new text replaces the old, marked as corrected.
export function applyCorrection(finals, ev) {
  const text = finals.querySelector(`li[data-segment="${ev.segment}"] .text`);
  if (!text) return;
  text.textContent = ev.text;
  text.classList.add("corrected");
}

// A final's speaker label that came after the final.
export function applySpeaker(finals, ev) {
  const li = finals.querySelector(`li[data-segment="${ev.segment}"]`);
  if (!li || li.querySelector(".speaker")) return;
  li.querySelector(".text").before(speakerChip(ev.speaker), " ");
}
