"""Progress for people: one line of text per event, and a terminal bar, both from the job's whole fraction."""

from __future__ import annotations

import sys

from tqdm import tqdm

from core.jobs import ProgressEvent

from .commands import wait_text

__all__ = ["TerminalProgress", "progress_line", "percent"]

_BAR_UNITS = 1000  # the terminal bar counts thousandths of the job


def percent(event: ProgressEvent) -> int:
    return min(100, int(100 * event.fraction))


def progress_line(event: ProgressEvent, width: int = 10) -> str:
    """'[#####.....]  52% frame 3/24 octave 2/2, about 1 min left' (or 'encoding')."""
    if event.stage == "encode":
        return "encoding"
    filled = width * percent(event) // 100
    left = f", about {wait_text(event.eta)} left" if event.eta is not None else ""
    return f"[{'#' * filled}{'.' * (width - filled)}] {percent(event):3d}% {event.stage}{left}"


class TerminalProgress:
    """Callable progress sink: `with TerminalProgress("dream") as progress: runner.run(spec, progress)`.

    The bar runs once from 0 to 100% over the whole job; tqdm shows the time left from its pace.
    """

    def __init__(self, label: str, *, stream=None):
        self.label = label
        self.stream = stream or sys.stderr
        self.bar: tqdm | None = None

    def __enter__(self) -> "TerminalProgress":
        return self

    def __call__(self, event: ProgressEvent) -> None:
        if self.bar is None:
            self.bar = tqdm(total=_BAR_UNITS, desc=self.label, file=self.stream, leave=False, disable=None,
                            dynamic_ncols=True, bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix} [{elapsed}<{remaining}]")
        self.bar.set_postfix_str(event.stage, refresh=False)
        self.bar.update(max(0, round(event.fraction * _BAR_UNITS) - self.bar.n))
        if event.fraction >= 1.0:
            self.bar.refresh()  # tqdm draws at most every 0.1 s: make sure the end is shown before the bar goes

    def __exit__(self, *exc_info) -> None:
        if self.bar is not None:
            self.bar.close()
