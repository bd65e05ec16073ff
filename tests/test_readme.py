"""The README's first two commands, command 1 run here, and every edge-run line parses
(test_readme_commands.py runs every line for real)."""

import os
import re
import shlex
import subprocess
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
