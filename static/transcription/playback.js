// Playback from a phrase: an element with data-start/data-end (milliseconds) plays the kept audio from
// its start and stops at its end when clicked (or Enter/Space). The session page and the admin use it.
export function playFrom(player, items) {
  let stopAt = null;
  player.addEventListener("timeupdate", () => {
    if (stopAt !== null && player.currentTime >= stopAt) { player.pause(); stopAt = null; }
  });
  const play = (item) => {
    player.currentTime = Number(item.dataset.start) / 1000;
    stopAt = Number(item.dataset.end) / 1000;
    player.play();
    items.forEach((other) => (other.closest("tr") || other).classList.remove("playing"));
    (item.closest("tr") || item).classList.add("playing");
  };
  items.forEach((item) => {
    item.addEventListener("click", (e) => { if (e.target === item || !e.target.closest("button, input, a")) play(item); });
    item.addEventListener("keydown", (e) => {
      if (e.target === item && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); play(item); }
    });
  });
}
