"""The endpointer on its own (engines/endpointing.py): probabilities in, phrases out. No audio, no
model: each rule the live engine relies on, one window at a time."""
from transcription.engines.endpointing import (
    MIN_BURST, PREROLL, SHORT_BURST_WAIT_WINDOWS, TAIL, EndpointRules, Endpointer, Phrase, Started,
)
from transcription.engines.vad import VAD_WINDOW

RULES = EndpointRules(endpoint_windows=16, max_phrase=15 * 16000)  # 500 ms of silence, 15 s phrases


def feed(endpointer: Endpointer, probs, earliest=0) -> list:
    events = []
    for prob in probs:
        events += endpointer.push(prob, earliest=earliest)
    return events


def test_a_phrase_starts_with_its_preroll_and_ends_after_the_silence_with_its_tail():
    e = Endpointer(RULES)
    events = feed(e, [0.0] * 20 + [0.9] * 30 + [0.1] * 15)
    assert events == [Started(20 * VAD_WINDOW - PREROLL)] and e.in_speech  # 15 quiet windows: not yet
    (phrase,) = feed(e, [0.1])
    speech_end = 50 * VAD_WINDOW
    assert phrase == Phrase(20 * VAD_WINDOW - PREROLL, speech_end + TAIL, 30 * VAD_WINDOW)
    assert phrase.worth_decoding and not e.in_speech


def test_uncertain_windows_neither_continue_speech_nor_count_as_silence():
    e = Endpointer(RULES)
    feed(e, [0.9] * 20 + [0.4] * 40)  # between SPEECH_OFF and SPEECH_ON
    assert e.in_speech and e.silence_windows == 0


def test_a_short_burst_waits_for_more_speech_to_join_it():
    """"맞아." then a pause of a second, then the rest: one phrase, not a lost word."""
    e = Endpointer(RULES)
    events = feed(e, [0.9] * 4 + [0.1] * 30 + [0.9] * 20 + [0.1] * 16)
    assert [type(x) for x in events] == [Started, Phrase]
    assert events[1].speech == 24 * VAD_WINDOW  # both bursts


def test_a_short_burst_alone_ends_after_the_long_wait_and_is_decoded_only_if_it_had_enough_speech():
    e = Endpointer(RULES)
    events = feed(e, [0.9] * 4 + [0.1] * SHORT_BURST_WAIT_WINDOWS)
    assert isinstance(events[-1], Phrase) and events[-1].speech >= MIN_BURST and events[-1].worth_decoding
    e = Endpointer(RULES)
    events = feed(e, [0.9] * 2 + [0.1] * SHORT_BURST_WAIT_WINDOWS)
    assert isinstance(events[-1], Phrase) and not events[-1].worth_decoding  # a click, not a word


def test_a_long_phrase_is_cut_at_its_quietest_window_and_goes_on():
    e = Endpointer(EndpointRules(endpoint_windows=16, max_phrase=100 * VAD_WINDOW))
    probs = [0.9] * 80 + [0.45] + [0.9] * 40
    events = feed(e, probs)
    cut = next(x for x in events if isinstance(x, Phrase))
    assert cut.end == 81 * VAD_WINDOW  # just after the quietest window
    assert events[-1] == Started(cut.end) and e.in_speech and e.start == cut.end


def test_a_change_of_voice_cuts_the_phrase_at_its_quietest_window_and_speech_goes_on():
    """Another voice took over somewhere in [earliest, latest] without a pause: the phrase ends at the
    quietest window there, and the rest is the next phrase (speakers/changes.py finds the range)."""
    e = Endpointer(RULES)
    feed(e, [0.9] * 60 + [0.6] + [0.9] * 60)
    earliest, latest = 50 * VAD_WINDOW, 70 * VAD_WINDOW
    phrase, started = e.cut_between(earliest, latest)
    assert phrase.end == 61 * VAD_WINDOW and phrase.start == 0  # the end of the 0.6 window
    assert started == Started(phrase.end) and e.in_speech and e.start == phrase.end
    assert e.cut_between(10**9, 10**9 + 1) == []  # no window there: nothing cut


def test_finishing_closes_the_phrase_in_progress_only():
    e = Endpointer(RULES)
    assert e.finish(1000) is None
    feed(e, [0.9] * 10)
    phrase = e.finish(e.position)
    assert phrase == Phrase(0, 10 * VAD_WINDOW, 10 * VAD_WINDOW) and not e.in_speech


def test_a_phrase_never_starts_before_the_previous_one_ended_nor_before_the_audio_kept():
    e = Endpointer(RULES)
    feed(e, [0.9] * 10)
    first = e.finish(e.position)  # the client finalized mid-speech
    (started,) = feed(e, [0.9])  # speech goes on: its pre-roll would reach into the first phrase
    assert started.start == first.end
    e = Endpointer(RULES)
    (started,) = feed(e, [0.0] * 30 + [0.9], earliest=29 * VAD_WINDOW)
    assert started.start == 29 * VAD_WINDOW


def test_the_end_is_known_once_tail_of_silence_follows_the_speech_and_forgotten_when_speech_resumes():
    e = Endpointer(RULES)
    feed(e, [0.9] * 30)
    assert e.known_end is None  # still speaking
    feed(e, [0.1] * (TAIL // VAD_WINDOW + 1))
    assert e.known_end == 30 * VAD_WINDOW + TAIL
    feed(e, [0.9] * 3)
    assert e.known_end is None
    feed(e, [0.1] * 15)
    known = e.known_end
    (phrase,) = feed(e, [0.1])
    assert phrase.end == known == e.position - 16 * VAD_WINDOW + TAIL  # what known_end said before the endpoint


# -- speculative finals (engines/whisper.py), with a model that tells which samples it decoded --

class LengthModel:
    """Stands in for WhisperModel: the text of a decode is the length of the audio it was given (after
    a Korean letter: the sessions here are Korean, and a text without one would be decoded again)."""

    def __init__(self):
        self.decodes = []

    def transcribe(self, audio, **options):
        from types import SimpleNamespace

        self.decodes.append(len(audio))
        segment = SimpleNamespace(text=f"길이{len(audio)}", no_speech_prob=0.0, avg_logprob=-0.1, compression_ratio=1.0)
        return iter([segment]), SimpleNamespace(language="ko")


class LoudnessVad:
    """Speech where a 32 ms window is loud."""

    def __call__(self, audio):
        return (abs(audio.reshape(-1, VAD_WINDOW)).mean(axis=1) > 0.05).astype("float32")


def stream_phrases(settings, pcm: bytes, *, speculative: bool):
    from transcription.engines import StreamConfig
    from transcription.engines.whisper import PhraseStreamer

    settings.STT_SPECULATIVE_FINALS = speculative
    settings.STT_INTERIM_LOAD_MAX = 1.0  # never saturated: speculation is not skipped on a busy machine
    model = LengthModel()
    streamer = PhraseStreamer(model, LoudnessVad(), StreamConfig(language="ko-KR", interim_results=False))
    chunks = [pcm[i:i + 3200] for i in range(0, len(pcm), 3200)]
    finals = [(r.text, r.start_ms, r.end_ms) for r in streamer.run(iter(chunks)) if r.is_final]
    return finals, model.decodes, streamer.reused


def test_a_speculative_final_is_reused_only_for_exactly_the_audio_it_decoded(settings):
    """Phrase 1 pauses 300 ms (past TAIL, short of the endpoint) and goes on: that speculation is
    thrown away, and the one at its end is used. Phrase 2 ends in silence: its final is the
    speculative decode, no decode at the endpoint. Phrase 3 pauses, goes on, and the stream ends
    before any silence: decoded afresh. Every final's text is what a decode of its whole span gives
    without speculation."""
    import numpy as np

    def tone(seconds, loud=True):
        n = int(seconds * 16000)
        return ((np.sin(np.arange(n) * 0.3) * (8000 if loud else 30)).astype("<i2")).tobytes()

    pcm = tone(1.5) + tone(0.3, False) + tone(1.0) + tone(1.2, False) + tone(2.0) + tone(1.5, False)
    pcm += tone(1.0) + tone(0.3, False) + tone(1.0)
    with_speculation, decodes, reused = stream_phrases(settings, pcm, speculative=True)
    without, plain_decodes, _ = stream_phrases(settings, pcm, speculative=False)
    assert with_speculation == without and len(without) == 3
    assert reused == 2  # phrases 1 and 2 were decoded before their endpoint...
    assert len(decodes) == 5 and len(plain_decodes) == 3  # ...two speculations were wasted by resumed speech
