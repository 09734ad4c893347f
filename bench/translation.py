"""A translation never delays a transcript: final delay with and without `translate_to` (issue #12).

    python bench/translation.py                 # kspon_long, ko -> en (offline whisper), 3 runs each

Each run streams the same Korean recording at real-time pace to a fresh daphne, alternating without
and with live translation; the delays of all runs are pooled per configuration (one run has only
16 finals, too few for a stable p95 on a noisy 2-core machine). Goal: p95 with translation within
+10 % of p95 without.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, summary, write_result  # noqa: E402
from latency import measure  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wav", default=str(ROOT / "tests/data/ko/kspon_long.wav"))
    parser.add_argument("--lang", default="ko-KR")
    parser.add_argument("--to", default="en")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    pooled: dict[str, list[float]] = {"without": [], "with": []}
    rss: dict[str, list] = {"without": [], "with": []}
    for run in range(args.runs):
        for label, target in (("without", None), ("with", args.to)):
            result = measure(args.wav, args.lang, cer=True, translate_to=target)
            pooled[label] += result["final_delays_s"]
            rss[label].append(result["server_rss_mb"])
            d = result["final_delay_s"]
            print(f"run {run + 1} {label:7} translation: p50 {d['p50']:.2f} p95 {d['p95']:.2f} max {d['max']:.2f} s, "
                  f"{result['translations']} translations, RSS {result['server_rss_mb']} MB", flush=True)
    rows = {label: summary(values) for label, values in pooled.items()}
    for label, row in rows.items():
        print(f"pooled {label:7} translation ({len(pooled[label])} finals): p50 {row['p50']:.2f} "
              f"p95 {row['p95']:.2f} max {row['max']:.2f} s")
    ratio = rows["with"]["p95"] / rows["without"]["p95"]
    print(f"p95 with / without = {ratio:.2f} (goal <= 1.10: {'met' if ratio <= 1.10 else 'NOT met'})")
    out = write_result("translation", {"runs": args.runs, "pooled": rows, "ratio_p95": ratio, "rss_mb": rss})
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
