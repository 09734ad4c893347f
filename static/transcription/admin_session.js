// The admin's session page: each phrase's ▶ button plays the kept audio from that phrase, as on the
// session page.
import { playFrom } from "./playback.js";

const player = document.getElementById("stt-audio");
if (player) playFrom(player, [...document.querySelectorAll("button.stt-play")]);
