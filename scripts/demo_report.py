"""Compare the demo's detections with the example clips' labels (README command 1).

    python scripts/demo_report.py LABELS_JSON OUT_DIR

OUT_DIR holds one ``NAME.jsonl`` per clip (edge-run --json output). A detection counts for
a labelled word when it comes between the word's start and 1 s after its end. The last line
is the verdict: ``demo: PASS (...)`` or ``demo: FAIL (...)`` (exit status 1).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HIT_AFTER_END_S = 1.0


def judge(words: list[list[float]], times: list[float]) -> str:
    missed = [w for w in words if not any(w[0] <= t <= w[1] + HIT_AFTER_END_S for t in times)]
    stray = [t for t in times if not any(s <= t <= e + HIT_AFTER_END_S for s, e in words)]
    if not missed and not stray:
        return "correct"
    parts = [f"missed the word at {s:g}-{e:g} s" for s, e in missed] + [f"false detection at {t:g} s" for t in stray]
    return "WRONG: " + "; ".join(parts)


def main(labels_path: str, out_dir: str) -> int:
    labels = json.loads(Path(labels_path).read_text())
    wrong = judged = 0
    for jsonl in sorted(Path(out_dir).glob("*.jsonl")):
        times = [json.loads(line)["time"] for line in jsonl.read_text().splitlines() if line.strip()]
        found = f"detected at {', '.join(f'{t:g}' for t in times)} s" if times else "no detection"
        name = jsonl.stem + ".wav"
        if name in labels:
            words = labels[name]
            said = f"'activate' said at {', '.join(f'{s:g}-{e:g}' for s, e in words)} s" if words else "no 'activate'"
            verdict = judge(words, times)
            wrong += verdict != "correct"
            judged += 1
            print(f"{name}: {said}; {found}: {verdict}")
        else:
            print(f"{name}: not labelled; {found}")
    if wrong or not judged:
        print(f"demo: FAIL ({wrong} of {judged} labelled clips wrong)")
        return 1
    print(f"demo: PASS (all {judged} labelled clips correct)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    sys.exit(main(sys.argv[1], sys.argv[2]))
