"""Signals of the data layer, for the layers above it to act on without being imported by it."""
from django.dispatch import Signal

# A session has ended (live or uploaded): kwargs `session_id`, `status`. The second pass listens
# (transcription/refine.py).
session_finished = Signal()
