"""Whisper engine behaviour: no text from silence or noise, language detection, resume, finalize."""
import asyncio

import jiwer
import numpy as np
import pytest
from asgiref.sync import sync_to_async

from transcription.engines import FINALIZE, StreamConfig, get_engine
from transcription.engines.guards import cut_repetitions, is_silence_hallucination

from .conftest import DATA, frames, normalise_en, read_wav, receive_until

pytestmark = pytest.mark.model


@pytest.fixture
def whisper(settings):
    settings.STT_ENGINE = "whisper"
    settings.STT_WHISPER_MODEL = "base"
    settings.STT_WHISPER_MODEL_EN = ""
    settings.STT_MAX_BACKLOG_SECONDS = 120
    return get_engine("whisper")


def pcm16(signal: np.ndarray) -> bytes:
    return (np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes()


def pink_noise(n: int, rng) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.arange(1, len(spectrum) + 1))
    noise = np.fft.irfft(spectrum, n)
    return noise / np.abs(noise).max()


def run_engine(engine, pcm: bytes, lang: str, *, interim_results: bool = False, finalize_at: int | None = None):
    chunks = list(frames(pcm))
    if finalize_at is not None:
        chunks.insert(finalize_at, FINALIZE)
    return [r for r in engine.stream(iter(chunks), StreamConfig(language=lang, interim_results=interim_results))]


@pytest.mark.parametrize("noise", ["silence", "white", "pink", "hum"])
@pytest.mark.parametrize("lang", ["en-US", "ko-KR"])
def test_no_text_from_thirty_seconds_of_non_speech(whisper, noise, lang):
    rng = np.random.default_rng(7)
    n = 30 * 16000
    signal = {
        "silence": np.zeros(n),
        "white": 0.05 * rng.standard_normal(n),
        "pink": 0.3 * pink_noise(n, rng),
        "hum": 0.2 * np.sin(2 * np.pi * 50 * np.arange(n) / 16000) + 0.01 * rng.standard_normal(n),
    }[noise]
    results = run_engine(whisper, pcm16(signal), lang, interim_results=True)
    assert [r.text for r in results] == []


@pytest.mark.parametrize("wav, expected", [("en/jfk.wav", "en"), ("ko/kspon_001.wav", "ko")])
def test_auto_language_detects_the_language_of_each_final(whisper, wav, expected):
    finals = [r for r in run_engine(whisper, read_wav(DATA / wav), "auto") if r.is_final]
    assert finals and all(r.language == expected for r in finals), [(r.language, r.text) for r in finals]


def test_finalize_cuts_a_phrase_where_asked(whisper):
    pcm = read_wav(DATA / "en/jfk.wav")
    # Finalize 8.0 s in, in the middle of "ask what you can do for your country".
    finals = [r for r in run_engine(whisper, pcm, "en-US", finalize_at=80) if r.is_final]
    assert any(r.end_ms <= 8000 and r.end_ms >= 7900 for r in finals), [(r.end_ms, r.text) for r in finals]
    joined = normalise_en(" ".join(r.text for r in finals))
    assert jiwer.wer(normalise_en((DATA / "en/jfk.txt").read_text()), joined) <= 0.2


def test_guards_cut_loops_and_stock_phrases_only():
    assert cut_repetitions("the end the end the end the end the end") == "the end"
    assert cut_repetitions("감사합니다 감사합니다 감사합니다 감사합니다") == "감사합니다"
    assert cut_repetitions("ask not what your country can do for you") == "ask not what your country can do for you"
    assert is_silence_hallucination("Thanks for watching!", "en")
    assert is_silence_hallucination("시청해주셔서 감사합니다.", "ko")
    assert not is_silence_hallucination("Thanks for the report on the budget.", "en")


@pytest.mark.django_db(transaction=True)
async def test_resume_mid_phrase_with_whisper_loses_and_repeats_nothing(connect, make_user, whisper, settings):
    settings.STT_RESUME_SECONDS = 10
    user = await sync_to_async(make_user)()
    pcm = read_wav(DATA / "en/jfk.wav")
    chunks = list(frames(pcm))
    first = await connect(user=user)
    await first.connect()
    await first.send_json_to({"type": "start", "lang": "en-US"})
    started = await first.receive_json_from(timeout=10)
    seen = [started]
    for frame in chunks[:55]:  # 5.5 s: in the middle of "ask not what your country..."
        await first.send_to(bytes_data=frame)
    await asyncio.sleep(1.0)
    while not await first.receive_nothing(timeout=0.5):
        seen.append(await first.receive_json_from())
    await first.disconnect()  # dropped mid-phrase

    second = await connect(user=user)
    await second.connect()
    await second.send_json_to({"type": "resume", "session": started["session"], "last_seq": seen[-1]["seq"]})
    assert (await second.receive_json_from(timeout=10))["event"] == "resumed"
    for frame in chunks[55:]:
        await second.send_to(bytes_data=frame)
    await second.send_json_to({"type": "end"})
    seen += await receive_until(second, lambda e: e.get("event") == "ended", timeout=60)
    await second.disconnect()

    numbered = [e["seq"] for e in seen if "seq" in e]
    assert numbered == list(range(1, len(numbered) + 1))  # contiguous across the drop
    finals = [e for e in seen if e["type"] == "final"]
    wer = jiwer.wer(normalise_en((DATA / "en/jfk.txt").read_text()), normalise_en(" ".join(f["text"] for f in finals)))
    assert wer <= 0.10, [f["text"] for f in finals]


def test_the_batch_path_gives_the_same_text_as_single_decodes(whisper):
    """The GPU path decodes several sessions' finals in one pass (engines/batch.py); on this CPU it must
    give what a single decode gives: Korean and English phrases, one with the previous phrase as prefix."""
    from faster_whisper.vad import get_vad_model

    from transcription.engines.batch import BatchItem, decode_batch
    from transcription.engines.whisper import PhraseStreamer, StreamingVad

    clips = [("ko-KR", DATA / f"ko/kspon_00{n}.wav", None) for n in (1, 2, 3, 5)]
    clips += [("en-US", DATA / "en/jfk.wav", None), ("en-US", DATA / "en/jfk.wav", "And so, my fellow Americans,")]
    singles, items, model = [], [], whisper.model_for("ko-KR")
    for lang, path, prefix in clips:
        audio = np.frombuffer(read_wav(path), dtype="<i2").astype(np.float32) / 32768
        streamer = PhraseStreamer(model, StreamingVad(get_vad_model()), StreamConfig(language=lang))
        singles.append(streamer.decoder.decode(audio, final=True, prefix=prefix).text)
        items.append(BatchItem(audio, streamer.decoder.options.whisper_language, prefix))
    batched = decode_batch(model, items)
    assert [r.text for r in batched] == singles
    assert all(text for text in singles) and singles[5].startswith("And so, my fellow Americans,")


def test_speculative_finals_give_the_text_a_fresh_decode_gives(whisper, settings):
    """Korean phrases with a pause inside one (speech resumes after 300 ms) and between them: the
    finals, decoded before their endpoint where the span held, are those of a run without it."""
    from faster_whisper.vad import get_vad_model

    from transcription.engines.whisper import PhraseStreamer, StreamingVad

    def pause(seconds):
        return np.random.default_rng(1).normal(0, 30, int(seconds * 16000)).astype("<i2").tobytes()

    pcm = (read_wav(DATA / "ko/kspon_001.wav") + pause(0.3) + read_wav(DATA / "ko/kspon_002.wav") + pause(1.2)
           + read_wav(DATA / "ko/kspon_003.wav") + pause(1.2))
    settings.STT_INTERIM_LOAD_MAX = 1.0  # never saturated: speculation is not skipped on a busy machine
    runs = {}
    for speculative in (True, False):
        settings.STT_SPECULATIVE_FINALS = speculative
        streamer = PhraseStreamer(whisper.model_for("ko-KR"), StreamingVad(get_vad_model()), StreamConfig(language="ko-KR"))
        finals = [(r.text, r.start_ms, r.end_ms) for r in streamer.run(iter(frames(pcm))) if r.is_final]
        runs[speculative] = finals, streamer.reused
    assert runs[True][0] == runs[False][0] and len(runs[False][0]) >= 2, runs
    assert runs[True][1] >= 2 and runs[False][1] == 0, runs


def test_finals_carry_timed_words_at_the_cost_of_no_second_decode_and_with_the_same_text(whisper, settings, monkeypatch):
    """Korean phrases in a row, the later ones decoded after the previous phrase (the context decode):
    every final has its words, in order, inside its phrase, with a probability, and they spell the
    final. Its text is what the decode without word times gives, and each decode encodes the audio
    once (faster-whisper would decode the tail after the last word again: made-up words, twice the time)."""
    from faster_whisper import WhisperModel
    from faster_whisper.vad import get_vad_model

    from transcription.engines.whisper import PhraseStreamer, StreamingVad

    def pause(seconds):
        return np.random.default_rng(2).normal(0, 30, int(seconds * 16000)).astype("<i2").tobytes()

    pcm = (read_wav(DATA / "ko/kspon_006.wav") + pause(1.0) + read_wav(DATA / "ko/kspon_001.wav") + pause(1.0)
           + read_wav(DATA / "ko/kspon_005.wav") + pause(1.2))
    encodes = []
    encode = WhisperModel.encode
    monkeypatch.setattr(WhisperModel, "encode", lambda self, features: encodes.append(1) or encode(self, features))
    runs = {}
    for word_times in (True, False):
        settings.STT_WORD_TIMES = word_times
        settings.STT_SPECULATIVE_FINALS = False
        streamer = PhraseStreamer(whisper.model_for("ko-KR"), StreamingVad(get_vad_model()),
                                  StreamConfig(language="ko-KR", interim_results=False))
        encodes.clear()
        runs[word_times] = [r for r in streamer.run(iter(frames(pcm))) if r.is_final]
        decodes = len(encodes)
        runs[word_times, "encodes"] = decodes
    timed, plain = runs[True], runs[False]
    assert [r.text for r in timed] == [r.text for r in plain] and len(timed) == 3
    assert runs[True, "encodes"] == runs[False, "encodes"]
    assert all(not r.words for r in plain)
    for final in timed:
        assert final.words and "".join(w.word for w in final.words).replace(" ", "") == final.text.replace(" ", "")
        starts = [w.start_ms for w in final.words]
        assert starts == sorted(starts)
        assert all(final.start_ms <= w.start_ms <= w.end_ms <= final.end_ms + 50 for w in final.words), final
        assert all(0 <= w.probability <= 1 for w in final.words)


def test_a_final_in_another_script_than_its_session_is_decoded_again_or_marked_doubtful(whisper, monkeypatch):
    """Told "ko", Whisper sometimes writes a phrase in English ("KEN and KEN and I met..."). A final with
    letters and no Hangul in a Korean session is decoded again (a beam, no prompt); still not Korean, it is
    kept but marked doubtful: never English sent as plain Korean. English speech in a Korean session forces
    the case here; both outcomes are counted in /metrics."""
    from transcription import metrics
    from transcription.engines import doubt, whisper_decoding

    first_decodes = []
    once = whisper_decoding.WhisperDecoder._once

    def english_first(self, audio, prefix, terms, *, beam_size, words=False):  # Whisper answering in English
        attempt = once(self, audio, prefix, terms, beam_size=beam_size, words=words)
        if beam_size == 1 and len(audio) >= 16000:
            first_decodes.append(attempt.decoded.text)
            return attempt._replace(decoded=attempt.decoded._replace(text="And so my fellow Americans"))
        return attempt

    monkeypatch.setattr(whisper_decoding.WhisperDecoder, "_once", english_first)
    counted = lambda outcome: metrics.wrong_script_finals.labels(outcome=outcome)._value.get()  # noqa: E731
    before = counted("decoded_again") + counted("doubtful")
    korean = [r for r in run_engine(whisper, read_wav(DATA / "ko/kspon_006.wav"), "ko-KR") if r.is_final]
    assert korean and all(doubt.SCRIPTS["ko"].search(r.text) and not r.doubtful for r in korean), korean
    english = [r for r in run_engine(whisper, read_wav(DATA / "en/jfk.wav"), "ko-KR") if r.is_final]
    for final in english:  # Korean after decoding again, or marked
        assert doubt.SCRIPTS["ko"].search(final.text) or final.doubtful, final
    assert counted("decoded_again") + counted("doubtful") - before >= len(korean) + len(english)
    assert doubt.wrong_script("KEN and KEN and I met", "ko") and not doubt.wrong_script("그 KTX 타고", "ko")
    assert not doubt.wrong_script("0.1%", "ko") and not doubt.wrong_script("Hello", "de")
