"""`dreambot console`: the whole pipeline as a local chat on stdin/stdout, no Discord needed.

Type the same commands as on Discord (the prefix is optional); give photos as file paths instead
of attachments: `!dream photos/cat.jpg layer:deep`. Results are written to the results folder.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
import time
from pathlib import Path
from typing import IO

from core.jobs import ProgressEvent

from .commands import CommandError, parse_command
from .executor import LocalProcessExecutor
from .service import Accepted, DreamService, Requester
from .settings import Settings
from .store import Store

__all__ = ["Console", "run_console", "CONSOLE_USER_PREFIX"]

CONSOLE_USER_PREFIX = "console:"  # console users never collide with Discord's numeric ids
MAX_INPUT_BYTES = 25 * 1024 * 1024
PROGRESS_INTERVAL = 2.0  # seconds between progress lines of one job


class Console:
    def __init__(self, service: DreamService, out: IO[str], *, user: str = "you", default_model: str | None = None):
        self.service = service
        self.out = out
        self.requester = Requester(user_id=CONSOLE_USER_PREFIX + user)
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
        if not line.startswith(prefix):
            line = prefix + line
        try:
            text, files = _split_paths(line)
            request = parse_command(text, prefix, defaults=self.defaults)
        except CommandError as exc:
            self.say(f"error: {exc}")
            return
        if request is None:
            self.say(f"type {prefix}help for the commands")
            return
        if not request.is_job:
            if files:
                self.say(f"error: {prefix}{request.name} takes no file")
                return
            self.say(await self.service.answer(request, self.requester))
            return
        if len(files) > (2 if request.name == "dream" else 1 if request.name == "zoom" else 0):
            self.say(f"error: too many files for {prefix}{request.name}")
            return
        try:
            inputs = [await asyncio.to_thread(_read_file, path) for path in files]
        except ValueError as exc:
            self.say(f"error: {exc}")
            return
        image, guide = (inputs + [None, None])[:2]
        admitted = await self.service.submit(request, self.requester, image=image, guide=guide)
        if not isinstance(admitted, Accepted):
            self.say(f"denied: {admitted.reason}")
            return
        ahead = f", {admitted.ahead} ahead" if admitted.ahead else ""
        self.say(f"job {admitted.job_id} queued: {request.name} seed:{admitted.spec.seed}{ahead}")
        task = asyncio.create_task(self._run(admitted.job_id, admitted.spec))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        if wait:
            await task

    async def _run(self, job_id: int, spec) -> None:
        last = {"time": 0.0, "stage": ""}

        def progress(event: ProgressEvent) -> None:
            now = time.monotonic()
            if now - last["time"] >= PROGRESS_INTERVAL or (event.stage != last["stage"] and event.stage == "encode"):
                last.update(time=now, stage=event.stage)
                percent = 100 * event.step // max(1, event.total)
                bar = "#" * (percent // 10) + "." * (10 - percent // 10)
                if event.stage == "encode":
                    self.say(f"job {job_id}: encoding")
                else:
                    self.say(f"job {job_id}: [{bar}] {percent:3d}% {event.stage}")

        outcome = await self.service.run(job_id, spec, progress)
        if outcome.status == "done" and outcome.result is not None:
            meta, seconds = outcome.result.metadata, outcome.result.timings.get("total", 0.0)
            extra = f" ({meta['class_name']}, p={meta['probability']:.3f})" if "probability" in meta else ""
            self.say(f"job {job_id} done{extra}: {outcome.result_path} ({seconds:.1f} s)")
        else:
            self.say(f"job {job_id} {outcome.status}: {outcome.error}")

    async def recover(self) -> None:
        """Re-run this console's jobs that a previous run left unfinished."""
        for record in await self.service.recover():
            if not record.user_id.startswith(CONSOLE_USER_PREFIX):
                continue  # another front's job; that front recovers it
            self.say(f"job {record.id} ({record.kind}) was unfinished when the console stopped; running it again")
            task = asyncio.create_task(self._run(record.id, record.to_spec()))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def drain(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)


def _split_paths(line: str) -> tuple[str, list[Path]]:
    """Pull words that name existing files out of the line (they stand in for attachments)."""
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    files = [Path(w).expanduser() for w in words[1:] if ":" not in w and "=" not in w and Path(w).expanduser().is_file()]
    kept = [words[0]] + [w for w in words[1:] if Path(w).expanduser() not in files]
    for word in kept[1:]:
        if "/" in word or Path(word).suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"):
            raise CommandError(f"no such file: {word}")
    return " ".join([kept[0]] + [w if w and " " not in w and "'" not in w and '"' not in w else shlex.quote(w) for w in kept[1:]]), files


def _read_file(path: Path) -> bytes:
    size = path.stat().st_size
    if size > MAX_INPUT_BYTES:
        raise ValueError(f"{path} is {size / 2**20:.0f} MiB; the limit is {MAX_INPUT_BYTES / 2**20:.0f} MiB")
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
    settings.results_dir.mkdir(parents=True, exist_ok=True)
    async with Store.open(settings.database_url, limits=settings.rate_limits, upgrade=True) as store:
        executor = LocalProcessExecutor(
            workers=settings.workers, device=settings.device, warm_models=(settings.dream_model,),
            max_batch=settings.max_batch or None,
        )
        async with executor:
            service = DreamService(
                store=store, executor=executor, results_dir=settings.results_dir, prefix=settings.command_prefix
            )
            console = Console(service, stdout, user=user, default_model=settings.dream_model)
            console.say(f"dreambot console: results go to {settings.results_dir.resolve()}; type {settings.command_prefix}help")
            await console.recover()
            async for line in _lines(stdin):
                if line.strip().lower() in ("quit", "exit", f"{settings.command_prefix}quit"):
                    break
                await console.handle_line(line, wait=wait)
            await console.drain()
    return 0
