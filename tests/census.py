"""Which of the project's files run functions while something happens: a census by profiling.

`Census` records, in this process and every thread started after `install()`, the source file of
each Python function called while recording is on, keeping those under the project's own
packages (bot/, core/). `CensusRunner` does the same inside an executor's worker process: it is
the engine's runner with a profiler, and writes what ran since the previous job each time a new
job starts (so job N's set is on disk when job N+1 begins).
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

from core.runner import JobRunner

__all__ = ["Census", "CensusRunner", "PROJECT_PACKAGES", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = ("bot", "core")


def _project_file(filename: str) -> str | None:
    """'bot/service/jobs.py' for a file of the project's packages, else None."""
    try:
        relative = Path(filename).resolve().relative_to(REPO_ROOT)
    except ValueError:
        return None
    return relative.as_posix() if relative.parts and relative.parts[0] in PROJECT_PACKAGES else None


class Census:
    """Call `install()` before the threads to watch start; then `start()`, `stop()`, and read `files`."""

    def __init__(self) -> None:
        self.files: set[str] = set()
        self.functions: set[tuple[str, str]] = set()  # (file, function name): what ran, to say why a file is on the path
        self.recording = False
        self._known: dict[str, str | None] = {}

    def _profile(self, frame: Any, event: str, arg: Any) -> None:
        if self.recording and event == "call":
            filename = frame.f_code.co_filename
            name = self._known.get(filename, "")
            if name == "":
                name = self._known[filename] = _project_file(filename)
            if name is not None:
                self.files.add(name)
                self.functions.add((name, frame.f_code.co_name))

    def install(self) -> None:
        sys.setprofile(self._profile)
        threading.setprofile(self._profile)

    def uninstall(self) -> None:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]

    def start(self) -> None:
        self.files, self.functions = set(), set()
        self.recording = True

    def stop(self) -> set[str]:
        self.recording = False
        return set(self.files)


class CensusRunner(JobRunner):
    """The engine's runner, counting the project's files that run in its worker process.

    census_dir: where `job-<n>.json` is written when job n+1 starts: the files that ran from the
    start of job n's `run` to the start of job n+1's (sending n's result included).
    """

    def __init__(self, device: str = "cpu", *, census_dir: str, **options: Any):
        super().__init__(device, **options)
        self._census = Census()
        self._census.install()
        self._dir = Path(census_dir)
        self._jobs = 0

    def _next_job(self) -> None:
        if self._jobs:
            (self._dir / f"job-{self._jobs}.json").write_text(json.dumps(sorted(self._census.stop())))
        self._jobs += 1
        self._census.start()

    def run(self, spec, progress=None, should_cancel=None):  # type: ignore[override]
        self._next_job()
        return super().run(spec, progress, should_cancel)

    def run_batch(self, specs, progress=None, should_cancel=None, *, on_outcome=None):  # type: ignore[override]
        self._next_job()
        return super().run_batch(specs, progress, should_cancel, on_outcome=on_outcome)
