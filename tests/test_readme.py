"""The README's first two commands, command 1 run here, and every edge-run line parses
(test_readme_commands.py runs every line for real)."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .paths import REPO, SHARED

README = (REPO / "README.md").read_text()
BLOCKS = re.findall(r"```sh\n(.*?)```", README, flags=re.S)


def command_lines(prog: str) -> list[str]:
    lines = []
    for block in BLOCKS:
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split("  #")[0].strip()
            if "|" in line:
                line = line.split("|")[-1].strip()
            if line.startswith(prog + " "):
                lines.append(line)
    return lines


def test_readme_starts_with_the_two_commands():
    first_two = [b.strip() for b in BLOCKS[:2]]
    assert first_two == ["bash scripts/demo.sh", "bash .ci/run"]


@pytest.mark.parametrize("line", command_lines("edge-run"))
def test_edge_run_lines_parse(line):
    from edge.cli import overrides_from, parser

    args = parser().parse_args(shlex.split(line)[1:])
    overrides_from(args)


def test_readme_command_1_runs_the_shipped_model_on_the_examples(tmp_path):
    env = dict(os.environ, DEMO_OUT=str(tmp_path), TRIGGER_EDGE_SHARED=str(SHARED))
    res = subprocess.run(["bash", "scripts/demo.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    wavs = sorted(p.name for p in Path(tmp_path).glob("*-chime.wav"))
    assert wavs == sorted(f"{p.stem}-chime.wav" for p in (SHARED / "data" / "activate" / "dev").glob("*.wav"))
    assert all((tmp_path / w.replace("-chime.wav", ".png")).is_file() for w in wavs)
    assert '"model": "activate"' in res.stdout
    labelled = [k for k in json.loads((SHARED / "data" / "activate" / "dev" / "labels.json").read_text()) if k.endswith(".wav")]
    verdicts = [l for l in res.stdout.splitlines() if l.endswith(": correct")]
    assert sorted(l.split(":")[0] for l in verdicts) == sorted(labelled)
    assert res.stdout.splitlines()[-1] == f"demo: PASS (all {len(labelled)} labelled clips correct)"


def test_demo_report_judges_misses_and_false_detections(tmp_path):
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"a.wav": [[1.0, 1.5]], "b.wav": [[1.0, 1.5]], "c.wav": []}))
    (tmp_path / "a.jsonl").write_text('{"time": 2.4}\n')
    (tmp_path / "b.jsonl").write_text('{"time": 2.6}\n')
    (tmp_path / "c.jsonl").write_text("")
    (tmp_path / "d.jsonl").write_text('{"time": 3.0}\n')
    res = subprocess.run([sys.executable, "scripts/demo_report.py", str(labels), str(tmp_path)], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert res.stdout.splitlines() == [
        "a.wav: 'activate' said at 1-1.5 s; detected at 2.4 s: correct",
        "b.wav: 'activate' said at 1-1.5 s; detected at 2.6 s: WRONG: missed the word at 1-1.5 s; false detection at 2.6 s",
        "c.wav: no 'activate'; no detection: correct",
        "d.wav: not labelled; detected at 3 s",
        "demo: FAIL (1 of 3 labelled clips wrong)",
    ]
