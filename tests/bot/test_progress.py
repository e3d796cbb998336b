"""Progress for people: the Discord/console line and the terminal bar reach 100% when a job ends."""

from __future__ import annotations

import io

from bot.progress import TerminalProgress, percent, progress_line
from core.jobs import ProgressEvent
from core.spec import compile_job


class _Terminal(io.StringIO):
    """A stream that says it is a terminal, so tqdm draws on it as it would for a person."""

    def isatty(self) -> bool:
        return True


def test_the_line_shows_the_stage_the_share_and_the_time_left():
    assert progress_line(ProgressEvent("octave 2/4", 3, 5, 0.52, eta=60)) == "[#####.....]  52% octave 2/4, about 1 min left"
    assert progress_line(ProgressEvent("encode", 0, 1, 0.97)) == "encoding"
    assert progress_line(ProgressEvent("done", 1, 1, 1.0)) == "[##########] 100% done"
    assert percent(ProgressEvent("done", 1, 1, 1.0000001)) == 100


def test_the_terminal_bar_of_a_real_job_reaches_100_percent(runner):
    terminal = _Terminal()
    with TerminalProgress("visualize", stream=terminal) as progress:
        runner.run(compile_job("visualize", {"size": 64, "steps": 10}, seed=0), progress=progress)
        drawn = terminal.getvalue()
        assert progress.bar is not None and progress.bar.n == progress.bar.total
    frames = [frame for frame in drawn.split("\r") if "%|" in frame]
    shares = [int(frame.split("%|")[0].rsplit(":", 1)[-1]) for frame in frames]
    assert shares == sorted(shares) and shares[-1] == 100


def test_the_bar_never_appears_when_nothing_is_reported():
    terminal = _Terminal()
    with TerminalProgress("dream", stream=terminal) as progress:
        pass
    assert progress.bar is None and terminal.getvalue() == ""
