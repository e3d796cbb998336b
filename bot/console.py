"""`dreambot console`: the whole pipeline as a local chat on stdin/stdout, no Discord needed.

Type the same commands as on Discord (the prefix is optional); give photos as file paths instead
of attachments: `!dream photos/cat.jpg layer:deep`. Results are written to the results folder.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import IO

from core.jobs import ProgressEvent

from .commands import CommandError, parse_words, split_words
from .inputs import over_the_limit, takes_name
from .progress import progress_line
from .service import Accepted, Requester, Service
from .settings import Settings
from .store import JobRecord
from .wiring import open_service

__all__ = ["Console", "run_console", "CONSOLE_USER_PREFIX"]

CONSOLE_USER_PREFIX = "console:"  # console users never collide with Discord's numeric ids
PROGRESS_INTERVAL = 2.0  # seconds between progress lines of one job


class Console:
    def __init__(self, service: Service, out: IO[str], *, max_input_bytes: int, user: str = "you",
                 default_model: str | None = None):
        self.service = service
        self.max_input_bytes = max_input_bytes
        self.out = out
        self.requester = Requester(user_id=CONSOLE_USER_PREFIX + user, front="console")
        self.defaults = {"model": default_model} if default_model else None
        self.tasks: set[asyncio.Task] = set()

    def say(self, text: str) -> None:
        self.out.write(text.rstrip("\n") + "\n")
        self.out.flush()

    async def handle_line(self, line: str, *, wait: bool = False) -> None:
        """One line of input; job commands run in the background unless `wait`."""
        line = line.strip()
        if not line:
            return
        prefix = self.service.prefix
        body = line.removeprefix(prefix)
        if not body or not body[0].isalnum():
            self.say(f"type {prefix}help for the commands")
            return
        try:
            words, files = _split_paths(split_words(body))
            request = parse_words(words[0], words[1:], prefix, defaults=self.defaults)
        except CommandError as exc:
            self.say(f"error: {exc}")
            return
        if not request.is_job:
            if files:
                self.say(f"error: {prefix}{request.name} takes no file")
                return
            self.say(await self.service.answers.answer(request, self.requester))
            return
        try:
            inputs = [await asyncio.to_thread(_read_file, path, self.max_input_bytes) for path in files]
        except ValueError as exc:
            self.say(f"error: {exc}")
            return
        admitted = await self.service.jobs.submit(request, self.requester, images=inputs)
        if not isinstance(admitted, Accepted):
            self.say(f"denied: {admitted.reason}")
            return
        self.say(f"job {admitted.job_id} queued: {request.name} seed:{admitted.spec.seed}, {admitted.summary}")
        task = self._follow(admitted.job_id)
        if wait:
            await task

    def _follow(self, job_id: int) -> asyncio.Task:
        task = asyncio.create_task(self._report(job_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _report(self, job_id: int) -> None:
        last = {"time": 0.0, "stage": ""}

        def progress(event: ProgressEvent) -> None:
            now = time.monotonic()
            if now - last["time"] >= PROGRESS_INTERVAL or (event.stage != last["stage"] and event.stage == "encode"):
                last.update(time=now, stage=event.stage)
                self.say(f"job {job_id}: {progress_line(event)}")

        outcome = await self.service.jobs.follow(job_id, progress)
        if outcome.status == "done" and outcome.result is not None:
            meta, seconds = outcome.result.metadata, outcome.result.timings.get("total", 0.0)
            extra = f" ({meta['class_name']}, p={meta['probability']:.3f})" if "probability" in meta else ""
            self.say(f"job {job_id} done{extra}: {outcome.where} ({seconds:.1f} s)")
        elif outcome.status == "done":
            self.say(f"job {job_id} done: {outcome.where}")
        else:
            self.say(f"job {job_id} {outcome.status}: {outcome.error}")

    async def recover(self) -> None:
        """Re-run console jobs that a stopped console left unfinished: now, and whenever one dies later."""
        self._rerun(await self.service.leases.recover(_is_console_job, on_adopted=self._rerun_later))

    def _rerun(self, records: list[JobRecord]) -> None:
        for record in records:
            self.say(f"job {record.id} ({record.kind}) was unfinished when its console stopped; running it again")
            self._follow(record.id)

    async def _rerun_later(self, records: list[JobRecord]) -> None:
        self._rerun(records)

    async def drain(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)


def _is_console_job(record: JobRecord) -> bool:
    return record.front == "console"  # another front's jobs are that front's to recover


def _split_paths(words: list[str]) -> tuple[list[str], list[Path]]:
    """Pull words that name existing files out of the command's words (they stand in for attachments)."""
    files = [Path(w).expanduser() for w in words[1:] if ":" not in w and "=" not in w and Path(w).expanduser().is_file()]
    kept = [words[0]] + [w for w in words[1:] if Path(w).expanduser() not in files]
    for word in kept[1:]:
        if "/" in word or takes_name(word):
            raise CommandError(f"no such file: {word}")
    return kept, files


def _read_file(path: Path, max_bytes: int) -> bytes:
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(over_the_limit(str(path), size, max_bytes))
    return path.read_bytes()


async def _lines(stream: IO[str]):
    while True:
        line = await asyncio.to_thread(stream.readline)
        if not line:
            return
        yield line


async def run_console(
    settings: Settings,
    *,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    user: str = "you",
    wait: bool = False,
) -> int:
    """Open the store and the workers, recover unfinished jobs, then serve lines until EOF or `quit`."""
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    async with open_service(settings) as service:
        console = Console(service, stdout, user=user, default_model=settings.dream_model,
                          max_input_bytes=settings.max_input_bytes)
        console.say(f"dreambot console: results go to {settings.results_dir.resolve()}; type {settings.command_prefix}help")
        await console.recover()
        async for line in _lines(stdin):
            if line.strip().lower() in ("quit", "exit", f"{settings.command_prefix}quit"):
                break
            await console.handle_line(line, wait=wait)
        await console.drain()
    return 0
