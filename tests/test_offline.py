"""Whole-file recognition (uploads and the second pass): speech found as faster-whisper finds it,
windows batched while no live session decodes here, small jobs while one does, and the same words
whatever the batch."""
import pytest

from transcription.engines import get_engine, offline
from transcription.engines.scheduler import get_scheduler
from transcription.recording import WavReader

from .conftest import DATA


@pytest.mark.parametrize("name", ["ko/kspon_long.wav", "en/jfk.wav"])
def test_speech_found_block_by_block_is_what_faster_whisper_finds_in_the_whole_file(name, monkeypatch):
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    reader = WavReader(DATA / name)
    whole = get_speech_timestamps(reader.samples(0, reader.frames),
                                  VadOptions(max_speech_duration_s=30, min_silence_duration_ms=160))
    monkeypatch.setattr(offline, "VAD_BLOCK_SECONDS", 3)  # many block edges, some inside speech
    chunks = offline.speech_chunks(reader.samples, reader.frames)
    assert len(chunks) >= 4
    assert chunks == [(found["start"], found["end"]) for found in whole]


@pytest.fixture
def decoded_jobs(monkeypatch):
    """The windows each background job decodes (a stand-in for the model: no words)."""
    jobs = []

    def decode_batch(model, reader, windows, language, prompt, beam_size):
        jobs.append([sum(end - start for start, end in window.chunks) / 16000 for window in windows])
        return [[] for _ in windows]

    monkeypatch.setattr(offline, "decode_batch", decode_batch)
    return jobs


def test_an_upload_on_an_idle_server_is_decoded_in_even_batches_of_30_s_windows(decoded_jobs, settings, monkeypatch):
    settings.STT_REFINE_BATCH_SIZE = 8
    monkeypatch.setattr(get_scheduler(), "live_until", 0.0)  # (no live session here lately)
    reader = WavReader(DATA / "ko/kspon_long.wav")
    windows = offline.speech_windows([(i * 160_000, i * 160_000 + 400_000) for i in range(11)])  # 11 x 25 s
    stored = []
    offline.decode_windows(None, reader, windows, language="ko-KR", on_window=lambda n, words: stored.append(n))
    assert stored == list(range(1, 12))  # every window, in order
    assert [len(job) for job in decoded_jobs] == [6, 5]  # not 8 + 3
    assert max(max(job) for job in decoded_jobs) == 25.0


def test_while_a_live_session_decodes_an_upload_takes_the_decoder_only_in_small_jobs(decoded_jobs, settings):
    settings.STT_REFINE_WINDOW_SECONDS = 10
    reader = WavReader(DATA / "ko/kspon_long.wav")
    windows = offline.speech_windows([(i * 160_000, i * 160_000 + 120_000) for i in range(10)])  # 10 x 7.5 s
    live = object()
    get_scheduler().streaming(live, True)
    try:
        stored = []
        offline.decode_windows(None, reader, windows, language="ko-KR", start=1,
                               on_window=lambda n, words: stored.append(n))
    finally:
        get_scheduler().streaming(live, False)
    assert stored == [2, 3]  # from where a resumed job left off
    assert all(len(job) == 1 and job[0] <= 10 for job in decoded_jobs)
    assert sum(sum(job) for job in decoded_jobs) == pytest.approx(2 * 30 - 15)  # 2 windows' speech, all of it

    decoded_jobs.clear()  # the session has ended: its second pass, queued at once, still takes small jobs
    offline.decode_windows(None, reader, windows, language="ko-KR", on_window=lambda n, words: None)
    assert decoded_jobs and all(len(job) == 1 and job[0] <= 10 for job in decoded_jobs)


@pytest.mark.model
def test_a_recording_gives_the_same_timed_words_whatever_batch_its_windows_are_decoded_in(settings):
    settings.STT_WHISPER_MODEL = "base"
    model = get_engine("whisper").model_for("ko-KR")
    reader = WavReader(DATA / "ko/kspon_long.wav")
    windows = offline.plan_windows(reader)
    assert len(windows) == 2
    together = offline.decode_batch(model, reader, windows, "ko-KR", None, None)
    alone = [offline.decode_batch(model, reader, [window], "ko-KR", None, None)[0] for window in windows]
    assert together == alone
    text = "".join(word.text for words in together for word in words)
    assert "강릉" in text  # (kspon_long: "나 다음주에 강릉가는데")
    starts = [word.start_ms for words in together for word in words]
    assert starts == sorted(starts) and starts[-1] > 55_000  # in file time, past the first window


@pytest.mark.model
def test_speech_after_whisper_ends_a_window_early_is_decoded_too(settings, tmp_path):
    """Two phrases with a pause, joined into one window: Whisper wrote the first ("…모습이야?") and ended
    the window there, and the second phrase was lost from the upload (and the second pass). A stretch of
    speech with no word in it is decoded again on its own."""
    import wave

    import jiwer

    from .conftest import normalise_ko, read_wav

    settings.STT_WHISPER_MODEL = "base"
    path = tmp_path / "two.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16000)
        out.writeframes(read_wav(DATA / "ko/kspon_005.wav") + bytes(64000) + read_wav(DATA / "ko/kspon_006.wav")
                        + bytes(64000))
    model = get_engine("whisper").model_for("ko-KR")
    reader = WavReader(path)
    windows = offline.plan_windows(reader)
    assert len(windows) == 1  # both phrases in one window
    words = offline.decode_batch(model, reader, windows, "ko-KR", None, None)[0]
    second = normalise_ko((DATA / "ko/kspon_006.txt").read_text())
    heard = normalise_ko("".join(w.text for w in words if w.start_ms > 5000))
    assert jiwer.cer(second, heard) < 0.4, [w.text for w in words]
    starts = [w.start_ms for w in words]
    assert starts == sorted(starts)
