"""Audio that does not arrive over a live socket: uploaded recordings (and the one decoder they share)."""
