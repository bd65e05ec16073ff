"""Long jobs' progress: one rewritten line on a terminal, whole lines (not one giant \\r line) in a log."""

import io

from edge.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_in_a_log_progress_is_whole_lines_at_an_interval():
    log = io.StringIO()
    meter = Progress("job", 1000, stream=log, interval=3600.0)
    for done in range(1, 1001):
        meter.update(done)
    meter.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert lines == ["job: 1/1000", "job: 1000/1000"]  # the first and the last; nothing in between within the interval


def test_in_a_log_every_update_after_the_interval_is_a_line():
    log = io.StringIO()
    meter = Progress("job", 3, stream=log, interval=0.0)
    for done in (1, 2, 3):
        meter.update(done)
    assert log.getvalue().splitlines() == ["job: 1/3", "job: 2/3", "job: 3/3"]


def test_on_a_terminal_the_line_is_rewritten_in_place():
    tty = Terminal()
    meter = Progress("job", 2, stream=tty)
    meter.update(1)
    meter.update(2)
    meter.close()
    assert tty.getvalue() == "\rjob: 1/2\rjob: 2/2\n"
