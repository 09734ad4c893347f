// Session detail: clicking (or Enter on) a phrase plays the session's audio from that phrase.
const player = document.getElementById("player");
let stopAt = null;
function play(li) {
  player.currentTime = Number(li.dataset.start) / 1000;
  stopAt = Number(li.dataset.end) / 1000;
  player.play();
  document.querySelectorAll("#segments li.playing").forEach((e) => e.classList.remove("playing"));
  li.classList.add("playing");
}
player.addEventListener("timeupdate", () => {
  if (stopAt !== null && player.currentTime >= stopAt) { player.pause(); stopAt = null; }
});
document.querySelectorAll("#segments li.playable").forEach((li) => {
  li.addEventListener("click", () => play(li));
  li.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); play(li); } });
});
