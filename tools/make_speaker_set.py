"""Build tests/data/speakers/voices/: the speaker-label evaluation set (issue 25), once, from recordings
whose speakers are known. Run by hand; its output is committed, and nothing at run time reads the sources.

    python tools/make_speaker_set.py PYANNOTE_REPO

PYANNOTE_REPO is a checkout of github.com/pyannote/pyannote-audio (MIT). Its tests/data holds 30 s
excerpts of AMI Meeting Corpus meetings (CC BY 4.0) with RTTM truth naming each AMI speaker
(MEE009, FEO070, ...), and tutorials/assets/sample.wav a two-speaker conversation with its RTTM.

- Each voice: the stretches where its RTTM says that speaker alone talks (no overlap), >= 1 s, joined
  into voices/<voice>.wav; voices.json gives the stretches and the part (tune or held-out).
- jfk, beckett (English) and kspon_003 (Korean) come from tests/data: one recording, one speaker each.
- The real recordings (sample, dev00, tst00) are kept whole, with their RTTM as ranges: conversations
  nobody cut, overlaps and all.

Parts are split by recording: the tune part is AMI's train excerpts; the held-out part is the AMI
development and test excerpts (other meetings, other people), the pyannote sample, and jfk, beckett and
kspon_003.
"""
from __future__ import annotations

import collections
import json
import sys
import wave
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests/data/speakers/voices"
RATE = 16000
MIN_STRETCH = 1.0
TUNE = {"FEE083", "MEO069", "FEE078", "MEE075", "FEE087", "FEE088", "MEE076", "MEO086"}
HELD_OUT = {"MEE009", "MEE012", "FEO070", "FEO072", "MEE073", "speaker90", "speaker91"}
WHOLE = {"jfk": "en/jfk.wav", "beckett": "en/beckett.wav", "kspon_003": "ko/kspon_003.wav"}
REAL = ["sample", "dev00", "tst00"]


def load(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        chunks = []
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks).astype(np.int16)


def save(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.astype(np.int16).tobytes())


def rttm(path: Path) -> list[tuple[str, float, float, str]]:
    rows = []
    for line in path.read_text().splitlines():
        fields = line.split()
        speaker = fields[7].replace("É", "E")  # AMI's MÉO069 -> MEO069
        rows.append((fields[1], float(fields[3]), float(fields[3]) + float(fields[4]), speaker))
    return rows


def solo(rows) -> dict[str, list[tuple[str, float, float]]]:
    """Per speaker: (recording, start, end) where that speaker alone talks, >= MIN_STRETCH."""
    by_recording = collections.defaultdict(list)
    for row in rows:
        by_recording[row[0]].append(row)
    stretches = collections.defaultdict(list)
    for recording, turns in by_recording.items():
        for _, start, end, speaker in turns:
            parts = [(start, end)]
            for _, other_start, other_end, other in turns:
                if other == speaker:
                    continue
                parts = [piece for a, b in parts for piece in
                         ([(a, b)] if other_end <= a or other_start >= b else
                          [p for p in ((a, other_start), (other_end, b)) if p[1] > p[0]])]
            stretches[speaker] += [(recording, a, b) for a, b in parts if b - a >= MIN_STRETCH]
    return stretches


def main(pyannote: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    data = pyannote / "tests/data"
    rows = [r for name in ("debug.train", "debug.development", "debug.test")
            for r in rttm(data / f"{name}.rttm")]
    rows = [r for r in rows if (data / f"{r[0]}.wav").exists()]  # trn00's audio is not in the repository
    rows += rttm(pyannote / "tutorials/assets/sample.rttm")
    audio = {name: load(data / f"{name}.wav") for name in {r[0] for r in rows} if name != "sample"}
    audio["sample"] = load(pyannote / "tutorials/assets/sample.wav")
    voices = {}
    for speaker, stretches in sorted(solo(rows).items()):
        part = "tune" if speaker in TUNE else "held-out" if speaker in HELD_OUT else None
        if part is None:
            continue
        pieces, spans, at = [], [], 0
        for recording, start, end in sorted(stretches):
            piece = audio[recording][int(start * RATE):int(end * RATE)]
            pieces.append(piece)
            spans.append({"recording": recording, "source_start_s": round(start, 3), "source_end_s": round(end, 3),
                          "start_ms": at, "end_ms": at + len(piece) * 1000 // RATE})
            at = spans[-1]["end_ms"]
        save(OUT / f"{speaker}.wav", np.concatenate(pieces))
        voices[speaker] = {"part": part, "file": f"{speaker}.wav", "source": "AMI Meeting Corpus via pyannote-audio" if speaker.startswith(("M", "F"))
                           else "pyannote-audio tutorials/assets/sample.wav", "stretches": spans}
    for voice, relative in WHOLE.items():
        samples = load(ROOT / "tests/data" / relative)  # not copied: read from tests/data
        voices[voice] = {"part": "held-out", "source": f"tests/data/{relative}", "file": f"../../{relative}",
                         "stretches": [{"recording": voice, "start_ms": 0, "end_ms": len(samples) * 1000 // RATE}]}
    real = {}
    for recording in REAL:
        save(OUT / f"real_{recording}.wav", audio[recording])
        real[recording] = {"file": f"real_{recording}.wav", "ranges": [
            {"speaker": s, "start_ms": round(a * 1000), "end_ms": round(b * 1000)}
            for r, a, b, s in rows if r == recording]}
    (OUT / "voices.json").write_text(json.dumps({"voices": voices, "real": real}, indent=1, ensure_ascii=False) + "\n")
    for voice, info in voices.items():
        print(voice, info["part"], sum(s["end_ms"] - s["start_ms"] for s in info["stretches"]) / 1000)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
