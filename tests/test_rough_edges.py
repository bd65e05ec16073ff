"""What a new user hit first (issue 15, part 1): output paths checked before any work,
native library noise kept out of the terminal, a plain "no input devices", gpiozero's
fallback warnings as one line, a busy GPIO pin, and --help texts that say every default."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tomllib

import pytest

from edge.cli import main

from .paths import DEV, REPO

CLIP = DEV / "coursera__1.wav"
NO_CARD_ALSA = "pcm.!default {\n  type hw\n  card 99\n}\n"
"""An ALSA default device on a card that does not exist: ALSA prints its errors on every machine."""
COMMANDS = {name: target.split(":")[0] for name, target in
            tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"].items()}
"""Every installed command (pyproject.toml's scripts) -> its module."""
NATIVE_NOISE = ("ALSA lib", "jack", "Jack", "XNNPACK", "PinFactoryFallback", "warnings.warn")


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("edge-run: error:")]


@pytest.mark.parametrize(
    "option,value,message",
    [
        ("--plot", "/nonexistent/x.png", "folder /nonexistent does not exist"),
        ("--chime-out", "/nonexistent/x.wav", "folder /nonexistent does not exist"),
        ("--plot", "{tmp}/trace.txt", "must end in .png"),
        ("--chime-out", "{tmp}/chimed", "must end in .wav or .flac"),
        ("--chime-out", "{tmp}", "is a folder"),
    ],
)
def test_output_paths_are_checked_before_any_work(option, value, message, tmp_path, capsys):
    rc = main(["--input", str(CLIP), option, value.format(tmp=tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and len(error_lines(err)) == 1 and message in error_lines(err)[0]
    assert "model" not in err.replace(error_lines(err)[0], "")  # nothing loaded, nothing processed
    assert "Traceback" not in err


def test_a_bad_chime_sound_is_refused_before_the_file_is_processed(tmp_path, capsys):
    rc = main(["--input", str(CLIP), "--chime-out", str(tmp_path / "c.wav"), "--chime-sound", str(tmp_path / "missing.wav")])
    err = capsys.readouterr().err
    assert rc == 2 and "missing.wav" in error_lines(err)[0] and "detection(s) in" not in err


def test_read_only_output_folder_is_one_line(tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root may write anywhere")
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    rc = main(["--input", str(CLIP), "--plot", str(folder / "x.png")])
    assert rc == 2 and "not writable" in capsys.readouterr().err


def _run(args: list[str], tmp_path, **extra_env) -> subprocess.CompletedProcess:
    asound = tmp_path / "asound.conf"
    asound.write_text(NO_CARD_ALSA)
    env = {**os.environ, "ALSA_CONFIG_PATH": str(asound), "JACK_NO_START_SERVER": "1", **extra_env}
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, env=env, timeout=120)


def test_no_microphone_is_one_line_without_alsa_or_litert_noise(tmp_path):
    pytest.importorskip("pyaudio")
    quiet = _run([], tmp_path)
    assert quiet.returncode == 2 and len(error_lines(quiet.stderr)) == 1, quiet.stderr[-2000:]
    assert not [line for line in quiet.stderr.splitlines() if any(n in line for n in NATIVE_NOISE)], quiet.stderr
    loud = _run(["--verbose"], tmp_path)
    assert loud.returncode == 2 and any(n in loud.stderr for n in NATIVE_NOISE)  # --verbose lets it through


def test_list_devices_says_when_there_are_none(tmp_path):
    pytest.importorskip("pyaudio")
    res = _run(["--list-devices"], tmp_path)
    assert res.returncode == 0 and res.stdout.startswith("no input devices"), res.stdout + res.stderr
    assert "ALSA lib" not in res.stderr


def test_gpio_fallback_warnings_become_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    res = subprocess.run([sys.executable, "-m", "edge.cli", "--input", str(CLIP), "--gpio", "17"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert "PinFactoryFallback" not in res.stderr and "warnings.warn" not in res.stderr, res.stderr
    if res.returncode == 0:
        pytest.skip("a GPIO pin factory works on this machine (a Raspberry Pi): nothing falls back")
    assert res.returncode == 2 and len(error_lines(res.stderr)) == 1
    assert "no usable GPIO pin factory" in error_lines(res.stderr)[0] and "[tried: lgpio" in error_lines(res.stderr)[0]


def test_a_busy_gpio_pin_is_a_clear_error_at_start(capsys):
    from gpiozero import Device, DigitalOutputDevice
    from gpiozero.pins.mock import MockFactory

    previous = Device.pin_factory
    Device.pin_factory = MockFactory()
    holder = DigitalOutputDevice(17)  # another holder has the pin
    try:
        rc = main(["--input", str(CLIP), "--gpio", "17"])
    finally:
        holder.close()
        Device.pin_factory.close()
        Device.pin_factory = previous
    err = capsys.readouterr().err
    assert rc == 2 and len(error_lines(err)) == 1
    line = error_lines(err)[0]
    assert "gpio 17" in line and "in use" in line
    assert "detection(s) in" not in err  # refused at start, before the audio


# --- help -----------------------------------------------------------------------------------------


class _Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def parser_of(module: str, monkeypatch) -> argparse.ArgumentParser:
    """The command's own parser, caught at parse_args (so parsers built inside main() count too)."""

    def capture(self, *args, **kwargs):
        raise _Captured(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    try:
        importlib.import_module(module).main([])
    except _Captured as caught:
        return caught.parser
    raise AssertionError(f"{module}.main did not parse arguments")


def all_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    out = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out += all_parsers(sub)
    return out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_gives_every_option_a_text_and_no_rst_markup(command, monkeypatch):
    parser = parser_of(COMMANDS[command], monkeypatch)
    monkeypatch.undo()
    for p in all_parsers(parser):
        undocumented = [a.option_strings or a.dest for a in p._actions if a.help is None]
        assert not undocumented, f"{p.prog}: options without help: {undocumented}"
        text = p.format_help()
        assert "``" not in text, f"{p.prog} --help shows raw reStructuredText"
        for action in p._actions:
            shown = action.default not in (None, False, argparse.SUPPRESS, []) and action.option_strings
            if shown and action.help != argparse.SUPPRESS:
                assert "default" in p._get_formatter()._expand_help(action).lower(), f"{p.prog} {action.option_strings}: no default shown"


def test_edge_train_help_mentions_only_options_it_has(monkeypatch):
    text = parser_of("train.train", monkeypatch).format_help()
    assert "--concat" not in text
