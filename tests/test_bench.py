"""edge-bench measures (it asserts no speed): every engine reports figures from a real run."""

import json

from edge.bench import main

from .tiny import tiny


def test_bench_reports_all_engines(capsys):
    t = tiny()
    capsys.readouterr()
    assert main(["--seconds", "20", "--model", str(t.tflite), "--json"]) == 0
    rows = {r["engine"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"trigger-edge", "trigger-edge x2", "trigger-edge x4", "trigger-edge-stage1", "pymicro-wakeword", "pyopen-wakeword"}
    assert rows["trigger-edge-stage1"]["rtf"] > 0 and "verifications_per_hour" not in rows["trigger-edge-stage1"]
    ours = rows["trigger-edge"]
    assert ours["audio_seconds"] == 20.0
    assert ours["cpu_seconds"] > 0 and ours["rtf"] > 0 and ours["peak_rss_mb"] > 0
    assert ours["chunk_ms_p99"] >= ours["chunk_ms_median"] > 0
    assert ours["step_us_p99"] >= ours["step_us_median"] > 0
    for count in (2, 4):  # several words behind one front end: N times the detections of one
        row = rows[f"trigger-edge x{count}"]
        assert row["models"] == count and row["rtf"] > 0 and row["detections"] == count * ours["detections"]
    for peer in ("pymicro-wakeword", "pyopen-wakeword"):
        assert "error" in rows[peer] or rows[peer]["rtf"] > 0


def test_bench_without_audio_is_a_clear_error(tmp_path, capsys):
    assert main(["--seconds", "1", "--input", str(tmp_path / "missing.wav")]) == 2
    assert "no such audio file" in capsys.readouterr().err


def test_bench_counts_the_shipped_verifier(capsys):
    """The shipped model has a verifier: its runs are counted and their cost is in the RTF."""
    assert main(["--seconds", "30", "--engines", "trigger-edge", "--models", "1", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["engine"] == "trigger-edge" and row["rtf"] > 0
    assert row["verifications_per_hour"] > 0 and row["embeddings_per_hour"] >= row["verifications_per_hour"]


def test_bench_reports_the_cost_of_several_words_with_the_shipped_model(capsys):
    assert main(["--seconds", "10", "--engines", "trigger-edge", "--models", "1", "2", "--json"]) == 0
    rows = {r["engine"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"trigger-edge", "trigger-edge x2"}
    assert rows["trigger-edge x2"]["detections"] == 2 * rows["trigger-edge"]["detections"] > 0
    assert rows["trigger-edge x2"]["cpu_seconds"] > 0 and rows["trigger-edge x2"]["models"] == 2
