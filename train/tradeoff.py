"""The cascade's recall against its cost, over several verifier gates (candidate thresholds).

    edge-eval --model M --suite real --conditions clean --candidate-threshold P --out suite-P   # for each P
    edge-bench --model M_P --engines trigger-edge pymicro-wakeword --json > bench-P.json         # M_P: M gated at P
    python -m train.tradeoff --suite suite-* --bench bench-*.json --out tradeoff.png

Each suite run gives, at its gate, the cascade's FRR at 0.1 / 0.5 / 1 FA/h, its candidate
recall and how often the verifier runs per hour of real negative audio; each bench run the
real-time factor of the full path at that gate (and pymicro-wakeword's in the same run). Points
are matched by the gate each file records. Prints a table and plots FRR at 0.5 FA/h against
RTF, with pymicro-wakeword's RTF (and 3x it) marked.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from edge.errors import DataError, run_guarded
from edge.helpformat import HelpFormatter

CONDITION = "clean"
CASCADE = "cascade"
PEER = "pymicro-wakeword"
OURS = "trigger-edge"
PLOT_TARGET = "0.5"
PEER_RTF_BUDGET = 3.0
"""The most the issue allows the cascade to cost, as a multiple of pymicro-wakeword's RTF."""


@dataclass(frozen=True)
class Point:
    gate: float
    frr: dict[str, float | None]
    candidate_recall: float | None
    verifications_per_hour: float
    rtf: float | None
    peer_rtf: float | None


def suite_point(folder: Path) -> tuple[float, dict]:
    path = folder / "suite.json"
    try:
        data = json.loads(path.read_text())
        gate = float(data["verifier"]["candidate_threshold"])
        analysis = data["variants"][CASCADE][CONDITION]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a suite run of a model with a verifier, condition {CONDITION} ({exc})") from None
    return gate, analysis


def bench_point(path: Path) -> tuple[float, float, float | None]:
    """(gate, our RTF, pymicro-wakeword's RTF) of one edge-bench --json file."""
    try:
        rows = json.loads(path.read_text())
        ours = next(r for r in rows if r["engine"] == OURS)
        gate = float(ours["candidate_threshold"])
    except (OSError, ValueError, KeyError, TypeError, StopIteration) as exc:
        raise DataError(f"{path}: not an edge-bench --json run of trigger-edge with a verifier ({exc})") from None
    peer = next((r["rtf"] for r in rows if r["engine"] == PEER), None)
    return gate, float(ours["rtf"]), peer


def _pooled(recall: dict, words: dict) -> float | None:
    """One candidate recall over the positive sets, each weighted by its words."""
    got = [(v, words.get(k, 0)) for k, v in recall.items() if v is not None]
    total = sum(n for _, n in got)
    return sum(v * n for v, n in got) / total if total else None


def collect(suites: list[Path], benches: list[Path]) -> list[Point]:
    costs = {}
    for path in benches:
        gate, rtf, peer = bench_point(path)
        costs[gate] = (rtf, peer)
    points = []
    for folder in suites:
        gate, a = suite_point(folder)
        frr = {t: _frr(row) if row else None for t, row in a["targets"].items()}
        words = a["at_model_threshold"]["words"]
        rtf, peer = costs.get(gate, (None, None))
        points.append(Point(gate, frr, _pooled(a["candidate_recall"], words), float(a["verifications_per_hour"]), rtf, peer))
    return sorted(points, key=lambda p: p.gate)


def _frr(row: dict) -> float:
    """FRR over every word of every positive set at that row (sets weighted by their words)."""
    words = sum(row["words"].values())
    missed = sum(row["frr"][k] * n for k, n in row["words"].items() if row["frr"][k] is not None)
    return missed / words if words else 0.0


def table(points: list[Point]) -> str:
    head = f"{'gate':>6} {'verif/h':>8} {'cand.recall':>11} {'FRR@0.1':>8} {'FRR@0.5':>8} {'FRR@1':>8} {'RTF':>8} {'x pymicro':>9}"
    lines = ["the cascade at several gates (condition clean; FRR pooled over the word's sets)", head, "-" * len(head)]
    for p in points:
        cells = [f"{'-' if p.frr.get(t) is None else format(p.frr[t], '.1%'):>8}" for t in ("0.1", "0.5", "1")]
        rtf = "-" if p.rtf is None else f"{p.rtf:.5f}"
        ratio = "-" if p.rtf is None or not p.peer_rtf else f"{p.rtf / p.peer_rtf:.2f}"
        recall = "-" if p.candidate_recall is None else f"{p.candidate_recall:.1%}"
        lines.append(f"{p.gate:>6g} {p.verifications_per_hour:>8.0f} {recall:>11} " + " ".join(cells) + f" {rtf:>8} {ratio:>9}")
    return "\n".join(lines)


def plot(path: Path, points: list[Point], title: str) -> None:
    from .plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    shown = [p for p in points if p.rtf is not None and p.frr.get(PLOT_TARGET) is not None]
    ax.plot([p.rtf for p in shown], [100 * p.frr[PLOT_TARGET] for p in shown], "o-")
    for p in shown:
        ax.annotate(f"gate {p.gate:g}", (p.rtf, 100 * p.frr[PLOT_TARGET]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    peers = [p.peer_rtf for p in points if p.peer_rtf]
    if peers:
        peer = sum(peers) / len(peers)
        ax.axvline(peer, color="grey", linestyle="--", label=f"pymicro-wakeword RTF {peer:.4f}")
        ax.axvline(PEER_RTF_BUDGET * peer, color="grey", linestyle=":", label=f"{PEER_RTF_BUDGET:g}x pymicro-wakeword")
        ax.legend(fontsize=8)
    ax.set_xlabel("real-time factor (CPU s per audio s, one core)")
    ax.set_ylabel(f"FRR at {PLOT_TARGET} FA/h (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run(args: argparse.Namespace) -> list[Point]:
    points = collect([Path(s) for s in args.suite], [Path(b) for b in args.bench or []])
    if not points:
        raise DataError("no suite runs given")
    if args.out:
        plot(Path(args.out), points, args.title or "the cascade: recall against cost")
    return points


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.tradeoff", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--suite", nargs="+", required=True, metavar="DIR", help="edge-eval --suite real output folders (one per gate)")
    p.add_argument("--bench", nargs="*", metavar="JSON", help="edge-bench --json files (one per gate)")
    p.add_argument("--out", help="PNG of FRR at 0.5 FA/h against RTF")
    p.add_argument("--title", help="the plot's title")
    p.add_argument("--json", action="store_true", help="print the points as JSON instead of the table")
    args = p.parse_args(argv)
    code, points = run_guarded("tradeoff", run, args, resumable=False)
    if code is not None:
        return code
    print(json.dumps([p.__dict__ for p in points], indent=1) if args.json else table(points))
    return 0


if __name__ == "__main__":
    sys.exit(main())
