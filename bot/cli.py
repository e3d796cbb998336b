"""`dreambot`: the command-line front. The engine runs in-process here; the chat fronts use the executor.

Every failure the user can cause ends as one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any, Sequence, get_type_hints

from core.errors import DreamError, InvalidParameter, quoted
from core.params import PARAMS_BY_KIND, DreamParams, on_or_off

__all__ = ["main", "build_parser"]

IMAGE_SUFFIXES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
CLIP_SUFFIXES = {".mp4": "mp4", ".gif": "gif", ".webp": "webp"}  # a zoom's or a dream on a clip's: the output's format


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line instead of the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _add_common(p: argparse.ArgumentParser, *, model: bool = True) -> None:
    p.add_argument("--device", default=os.environ.get("DEVICE", "auto"), help="auto, cpu or cuda (default: auto)")
    if model:
        p.add_argument("--model", default=None, help=f"network (see `dreambot models`); default {DreamParams.model}")
    p.add_argument("--offline", action="store_true", help="never download weights")


def _default(setting: str) -> Any:
    """A setting's default as bot.settings declares it (imported late: `dreambot dream` needs no settings)."""
    from .settings import Settings

    return Settings.model_fields[setting].default


def _on_off(text: str) -> bool:
    switch = on_or_off(text)
    if switch is None:
        raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")
    return switch


def _add_job_options(p: argparse.ArgumentParser, kinds: Sequence[str], *, skip: Sequence[str] = ()) -> None:
    """One option per parameter of `kinds` (the first kind's first), named, typed and explained by
    core/params.py as the slash commands are: `--max-side 512`, `--loop seamless`, `--mask`. Ranges
    are checked by the compiler, once, for every front."""
    seen = {"model", "seed", *skip}
    for kind in kinds:
        hints = get_type_hints(PARAMS_BY_KIND[kind])
        for f in fields(PARAMS_BY_KIND[kind]):
            if f.name in seen:
                continue
            seen.add(f.name)
            flag, meta, hint = "--" + f.name.replace("_", "-"), f.metadata, hints[f.name]
            text = meta["help"] + (f" (default {f.default!r})" if f.default not in ("", ()) else "")
            if kind != kinds[0]:
                text = f"{kind}s: {text}"
            if hint is bool:  # `--mask` alone is on; `--flow off` switches a default-on option off
                p.add_argument(flag, type=_on_off, nargs="?", const=True, metavar="on|off", help=text)
            elif meta["choices"]:
                p.add_argument(flag, choices=list(meta["choices"]), help=text)
            else:
                p.add_argument(flag, type=hint if hint in (int, float) else str, help=text)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="dreambot", description="DeepDream on the command line and on Discord.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    p = sub.add_parser("dream", help="amplify what a layer sees in a photo or a short video")
    p.add_argument("input", help="photo (JPEG, PNG, WebP, BMP, GIF) or video (MP4, WebM, MOV, animated GIF or WebP)")
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg or .webp); for a video .mp4, .gif or .webp")
    p.add_argument("--guide", help="guide image whose features the dream moves toward")
    _add_job_options(p, ["dream", "video"], skip=["format"])  # a video's format is the output's extension
    p.add_argument("--seed", type=int, default=0)
    _add_common(p)

    p = sub.add_parser("visualize", help="render an ImageNet class from noise")
    p.add_argument("target", nargs="+", metavar="CLASS", help="class name or index, e.g. banana, 'anemone fish', 954")
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg or .webp)")
    _add_job_options(p, ["visualize"], skip=["target"])
    p.add_argument("--seed", type=int, default=0)
    _add_common(p)

    p = sub.add_parser("zoom", help="endless zoom into a dream, as a looping MP4, WebP or GIF")
    p.add_argument("input", nargs="?", help="photo to start from (default: noise)")
    p.add_argument("-o", "--output", required=True, help="output .mp4, .webp or .gif: the extension chooses the format")
    _add_job_options(p, ["zoom"])
    p.add_argument("--seed", type=int, default=0)
    _add_common(p)

    p = sub.add_parser("console", help="the bot's whole pipeline as a local chat on stdin/stdout")
    p.add_argument("--user", default="you", help="name to chat as (rate limits are per user)")
    p.add_argument("--wait", action="store_true", help="finish each job before reading the next line")

    p = sub.add_parser("run", help="run the Discord bot (needs DISCORD_TOKEN)")
    p.add_argument("--sync-commands", action="store_true", help="register the slash commands with Discord once")
    p.add_argument("--web", action="store_true", help="serve the web gallery in the same process (WEB_HOST, WEB_PORT)")

    p = sub.add_parser("web", help="serve the web gallery, /healthz and /metrics (no Discord connection)")
    p.add_argument("--host", help=f"address to listen on (default: WEB_HOST, {_default('web_host')})")
    p.add_argument("--port", type=int, help=f"port to listen on (default: WEB_PORT, {_default('web_port')})")

    p = sub.add_parser("results", help="result file maintenance")
    actions = p.add_subparsers(dest="action", required=True, parser_class=OneLineParser)
    p = actions.add_parser("prune", help="delete result files older than RESULT_RETENTION_DAYS that nothing needs")
    p.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    p.add_argument("--days", type=_days, help=f"this many days instead of RESULT_RETENTION_DAYS ({_default('result_retention_days'):g})")

    p = sub.add_parser("db", help="database maintenance")
    p.add_argument("action", choices=["upgrade"], help="upgrade: apply the migrations (safe to repeat)")

    sub.add_parser("models", help="list the networks")
    p = sub.add_parser("layers", help="list a network's layers and presets")
    p.add_argument("--model", default=DreamParams.model)
    p = sub.add_parser("classes", help="list or search the ImageNet classes")
    p.add_argument("search", nargs="*", help="text to look for")
    return parser


def _params(args: argparse.Namespace, *kinds: str) -> dict[str, Any]:
    """The job options given on the command line, by parameter name."""
    names = {f.name for kind in kinds for f in fields(PARAMS_BY_KIND[kind])} - {"model"}
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _read_input(path: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InvalidParameter(f"no such file: {path}") from None
    except IsADirectoryError:
        raise InvalidParameter(f"{path} is a folder, not an image") from None
    except OSError as exc:
        raise InvalidParameter(f"cannot read {path}: {exc.strerror}") from None
    from core.clips import probe_clip
    from core.images import is_clip
    from core.errors import InvalidImage
    from core.images import decode_image

    try:
        # Checked here so that the error names the file (input or guide); clips by their container only.
        probe_clip(data) if is_clip(data) else decode_image(data)
    except InvalidImage as exc:
        raise type(exc)(f"{path}: {exc}") from None
    return data


def _check_output(path: str, suffixes: Sequence[str]) -> Path:
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise InvalidParameter(f"output {path} must end with {', '.join(suffixes)}")
    if not out.parent.exists():
        raise InvalidParameter(f"the folder {out.parent} does not exist")
    return out


def _write_atomically(path: Path, data: bytes) -> None:
    """Write next to the target and rename, so an interrupted run never leaves half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _convert(png: bytes, fmt: str) -> bytes:
    if fmt == "PNG":
        return png
    from core.images import decode_image, encode_image

    decoded = decode_image(png)
    return encode_image(decoded.rgb, fmt, alpha=decoded.alpha)[0]


def _run_job(args: argparse.Namespace, kind: str, params: dict[str, Any], image: bytes | None = None, guide: bytes | None = None):
    from core.runner import JobRunner
    from core.spec import compile_job

    from .progress import TerminalProgress

    if args.model:
        params["model"] = args.model
    spec = compile_job(kind, params, images=[i for i in (image, guide) if i is not None], seed=args.seed)
    runner = JobRunner(args.device, allow_download=not args.offline)
    with TerminalProgress(kind) as progress:
        return runner.run(spec, progress=progress)


def _cmd_dream(args: argparse.Namespace) -> int:
    from core.images import is_clip

    image = _read_input(args.input)
    if is_clip(image):
        return _dream_on_clip(args, image)
    out = _check_output(args.output, list(IMAGE_SUFFIXES))
    guide = _read_input(args.guide) if args.guide else None
    result = _run_job(args, "dream", _params(args, "dream", "video"), image, guide)
    _write_atomically(out, _convert(result.data, IMAGE_SUFFIXES[out.suffix.lower()]))
    m = result.metadata
    seen = f"target {m['class_name']} p={m['probability']:.3f}, top-1 {m['top1_name']}" if "class_name" in m else m["objective"]
    print(f"wrote {out} ({m['size'][0]}x{m['size'][1]}, {seen}, {result.timings['total']:.1f} s)")
    return 0


def _dream_on_clip(args: argparse.Namespace, clip: bytes) -> int:
    out = _check_output(args.output, list(CLIP_SUFFIXES))
    # Given, a photo-only option gets its one line from compile_job, as a guide does.
    guide = _read_input(args.guide) if args.guide else None
    result = _run_job(args, "dream", _params(args, "dream", "video") | {"format": CLIP_SUFFIXES[out.suffix.lower()]}, clip, guide)
    _write_atomically(out, result.data)
    m = result.metadata
    sound = ", with sound" if m["audio"] else ""
    print(f"wrote {out}: {m['frames']} frames, {m['size'][0]}x{m['size'][1]} at {m['fps']:g} fps{sound}, "
          f"{m['bytes'] / 1024:.0f} KiB, {result.timings['total']:.1f} s")
    return 0


def _cmd_visualize(args: argparse.Namespace) -> int:
    out = _check_output(args.output, list(IMAGE_SUFFIXES))
    if args.mask and out.suffix.lower() in (".jpg", ".jpeg"):
        raise InvalidParameter("--mask needs a .png or .webp output: JPEG has no transparency")
    result = _run_job(args, "visualize", _params(args, "visualize") | {"target": " ".join(args.target)})
    _write_atomically(out, _convert(result.data, IMAGE_SUFFIXES[out.suffix.lower()]))
    m = result.metadata
    print(f"wrote {out}: {m['class_name']} ({m['class_index']}) p={m['probability']:.3f}, "
          f"top-1 {m['top1_name']}, {result.timings['total']:.1f} s")
    return 0


def _cmd_zoom(args: argparse.Namespace) -> int:
    out = _check_output(args.output, list(CLIP_SUFFIXES))
    fmt = CLIP_SUFFIXES[out.suffix.lower()]
    if args.format is not None and args.format != fmt:
        raise InvalidParameter(f"--format {args.format} disagrees with the output {out.name}; name it .{args.format} or leave --format out")
    image = _read_input(args.input) if args.input else None
    result = _run_job(args, "zoom", _params(args, "zoom") | {"format": fmt}, image)
    _write_atomically(out, result.data)
    m = result.metadata
    colours = f", {m['colors']} colours" if m["colors"] else ""
    print(f"wrote {out}: {m['frames']} frames, {m['size'][0]}x{m['size'][1]}{colours}, {m['loop']} loop, "
          f"{m['bytes'] / 1024:.0f} KiB, {result.timings['total']:.1f} s")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from core.models.registry import MODELS

    for entry in MODELS.values():
        print(f"{entry.name:20} {entry.description}")
    return 0


def _cmd_layers(args: argparse.Namespace) -> int:
    from core.models.registry import get_entry

    entry = get_entry(args.model)
    print("presets: " + ", ".join(f"{k}={v}" for k, v in entry.presets.items()))
    print("layers:  " + ", ".join(entry.layers))
    return 0


def _cmd_classes(args: argparse.Namespace) -> int:
    from core.models.classes import search_classes

    matches = search_classes(" ".join(args.search))
    if not matches:
        raise InvalidParameter(f"no class contains {quoted(' '.join(args.search))}")
    for index, name in matches:
        print(f"{index:4} {name}")
    return 0


def _settings():
    from .settings import ConfigError, load_settings

    try:
        return load_settings()
    except ConfigError as exc:
        raise InvalidParameter(f"bad configuration: {'; '.join(str(exc).splitlines())}") from None


def _cmd_console(args: argparse.Namespace) -> int:
    import asyncio

    from .console import run_console

    return asyncio.run(run_console(_settings(), user=args.user, wait=args.wait))


def _cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from .discord_front.run import run_bot

    settings = _settings()
    try:
        return asyncio.run(run_bot(settings, sync_commands=args.sync_commands, web=args.web))
    except Exception as exc:
        import discord

        if isinstance(exc, discord.LoginFailure):
            raise InvalidParameter("Discord refused the token (DISCORD_TOKEN); check it in the developer portal") from None
        raise


def _cmd_web(args: argparse.Namespace) -> int:
    import asyncio

    from .web import run_web

    if args.port is not None and not 0 <= args.port <= 65535:
        raise InvalidParameter(f"--port must be from 0 (any free port) to 65535, got {args.port}")
    return asyncio.run(run_web(_settings(), host=args.host, port=args.port))


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        days = float("nan")
    if not 0 < days < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of days above 0, got {text!r}")
    return days


def _cmd_results(args: argparse.Namespace) -> int:
    import asyncio

    from .wiring import prune_results

    settings = _settings()
    days = args.days if args.days is not None else settings.result_retention_days
    if days == 0:
        print("results are kept forever (RESULT_RETENTION_DAYS is 0): nothing to prune; --days N prunes anyway")
        return 0
    print(asyncio.run(prune_results(settings, days=days, dry_run=args.dry_run)).summary)
    return 0


def _cmd_db(args: argparse.Namespace) -> int:
    from .store.migrate import head_revision, upgrade

    upgrade(_settings().database_url)
    print(f"database is at revision {head_revision()}")
    return 0


COMMANDS = {
    "console": _cmd_console,
    "db": _cmd_db,
    "results": _cmd_results,
    "run": _cmd_run,
    "web": _cmd_web,
    "dream": _cmd_dream,
    "visualize": _cmd_visualize,
    "zoom": _cmd_zoom,
    "models": _cmd_models,
    "layers": _cmd_layers,
    "classes": _cmd_classes,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except DreamError as exc:
        print(f"dreambot: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dreambot: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a store or system failure: one line, the traceback only on request
        if os.environ.get("DREAMBOT_DEBUG"):
            raise
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"dreambot: error: {detail} (set DREAMBOT_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
