"""A terminal progress bar fed by the engine's progress events."""

from __future__ import annotations

import sys

from tqdm import tqdm

from core.jobs import ProgressEvent

__all__ = ["TerminalProgress"]


class TerminalProgress:
    """Callable progress sink: `with TerminalProgress("dream") as progress: runner.run(spec, progress)`."""

    def __init__(self, label: str, *, stream=None):
        self.label = label
        self.stream = stream or sys.stderr
        self.bar: tqdm | None = None

    def __enter__(self) -> "TerminalProgress":
        return self

    def __call__(self, event: ProgressEvent) -> None:
        if event.stage == "encode":
            return
        if self.bar is None or self.bar.total != event.total:
            if self.bar is not None:
                self.bar.close()
            self.bar = tqdm(total=event.total, desc=self.label, file=self.stream, leave=False,
                            disable=None, dynamic_ncols=True)
        self.bar.set_postfix_str(event.stage, refresh=False)
        self.bar.update(event.step - self.bar.n)

    def __exit__(self, *exc_info) -> None:
        if self.bar is not None:
            self.bar.close()
