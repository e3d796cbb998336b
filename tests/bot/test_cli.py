from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import skimage
import torch
from PIL import Image

from core.clips import probe_clip

PHOTOS = Path(skimage.__file__).parent / "data"
CHELSEA = str(PHOTOS / "chelsea.png")  # 451 x 300


@pytest.fixture(autouse=True)
def _no_device_from_the_environment(monkeypatch):
    monkeypatch.delenv("DEVICE", raising=False)


def oversized_png(path: Path, side: int = 30000) -> Path:
    """A 40x24 PNG whose header claims `side` x `side` pixels (valid CRC)."""
    out = io.BytesIO()
    Image.new("RGB", (40, 24), (200, 30, 10)).save(out, "PNG")
    data = bytearray(out.getvalue())
    data[16:24] = struct.pack(">II", side, side)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


# -- bad input files -------------------------------------------------------------------------


def test_missing_input_file(fails, tmp_path):
    line = fails("dream", tmp_path / "nope.png", "-o", tmp_path / "out.png")
    assert "nope.png" in line and "no such file" in line
    assert not (tmp_path / "out.png").exists()


def test_empty_file(fails, tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    line = fails("dream", tmp_path / "empty.png", "-o", tmp_path / "out.png")
    assert "empty.png" in line and "empty" in line


def test_truncated_image(fails, tmp_path):
    data = Path(CHELSEA).read_bytes()
    (tmp_path / "half.png").write_bytes(data[: len(data) // 2])
    line = fails("dream", tmp_path / "half.png", "-o", tmp_path / "out.png")
    assert "half.png" in line and "truncated" in line


def test_text_file(fails, tmp_path):
    (tmp_path / "notes.txt").write_text("not a picture\n")
    line = fails("dream", tmp_path / "notes.txt", "-o", tmp_path / "out.png")
    assert "notes.txt" in line and "not an image" in line


@pytest.mark.parametrize("side", [8000, 30000])
def test_header_declaring_too_many_pixels(fails, tmp_path, side):
    big = oversized_png(tmp_path / "bomb.png", side)
    line = fails("dream", big, "-o", tmp_path / "out.png")
    assert "bomb.png" in line and ("pixels" in line or "MP" in line)
    if side == 8000:
        assert "8000x8000" in line


def test_broken_guide_is_named(fails, tmp_path):
    (tmp_path / "guide.png").write_bytes(b"")
    line = fails("dream", CHELSEA, "--guide", tmp_path / "guide.png", "-o", tmp_path / "out.png")
    assert "guide.png" in line


def test_folder_as_input(fails, tmp_path):
    line = fails("dream", tmp_path, "-o", tmp_path / "out.png")
    assert str(tmp_path) in line and "folder" in line


# -- unknown names ---------------------------------------------------------------------------


def test_unknown_model_suggests_the_closest(fails, tmp_path):
    line = fails("dream", CHELSEA, "-o", tmp_path / "out.png", "--model", "goglenet")
    assert "goglenet" in line and "googlenet" in line.split("goglenet", 1)[1]


def test_unknown_layer_suggests_the_closest(fails, tmp_path):
    line = fails("dream", CHELSEA, "-o", tmp_path / "out.png", "--layer", "blok8")
    assert "blok8" in line and "block8" in line


def test_unknown_class(fails, tmp_path):
    line = fails("visualize", "xyzzy", "-o", tmp_path / "out.png")
    assert "xyzzy" in line


def test_ambiguous_class_lists_choices(fails, tmp_path):
    line = fails("visualize", "cat", "-o", tmp_path / "out.png")
    assert "ambiguous" in line and "Persian cat" in line and "Siamese cat" in line


def test_class_index_out_of_range(fails, tmp_path):
    line = fails("visualize", "1000", "-o", tmp_path / "out.png")
    assert "1000" in line and "0-999" in line


# -- impossible parameters -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["dream", CHELSEA, "--octaves", "0"], ["octaves", "0"]),
        (["dream", CHELSEA, "--octaves", "99"], ["octaves", "99"]),
        (["dream", CHELSEA, "--steps", "-1"], ["steps", "-1"]),
        (["dream", CHELSEA, "--strength", "abc"], ["strength", "abc"]),
        (["dream", CHELSEA, "--max-side", "many"], ["max-side", "many"]),
        (["visualize", "banana", "--size", "5"], ["size", "5"]),
        (["zoom", "--frames", "0"], ["frames", "0"]),
        (["zoom", "--max-bytes", "10"], ["max_bytes", "10"]),
    ],
    ids=["octaves-0", "octaves-99", "steps-negative", "strength-text", "max-side-text", "size-5", "frames-0",
         "max-bytes-10"],
)
def test_impossible_parameter(fails, tmp_path, argv, expected):
    output = tmp_path / ("out.gif" if argv[0] == "zoom" else "out.png")
    line = fails(*argv, "-o", output)
    for word in expected:
        assert word in line
    assert not output.exists()


def test_missing_required_argument_is_one_line(fails):
    line = fails("dream", CHELSEA)
    assert "-o" in line or "--output" in line


def test_unknown_command_is_one_line(fails):
    assert "dreem" in fails("dreem")


def test_wrong_output_extension(fails, tmp_path):
    line = fails("dream", CHELSEA, "-o", tmp_path / "out.txt")
    assert "out.txt" in line and ".png" in line


def test_zoom_output_must_be_an_animation(fails, tmp_path):
    line = fails("zoom", "-o", tmp_path / "z.png")
    assert "z.png" in line and all(ext in line for ext in (".mp4", ".gif", ".webp"))


def test_zoom_format_that_disagrees_with_the_extension_is_one_line(fails, tmp_path):
    line = fails("zoom", "-o", tmp_path / "z.gif", "--format", "mp4")
    assert "--format mp4" in line and "z.gif" in line and "\n" not in line.strip()
    assert not (tmp_path / "z.gif").exists()
    assert "seamles" in fails("zoom", "-o", tmp_path / "z.mp4", "--loop", "seamles")


def test_output_folder_missing(fails, tmp_path):
    line = fails("dream", CHELSEA, "-o", tmp_path / "nowhere" / "out.png")
    assert "nowhere" in line and "does not exist" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_cpu_machine(fails, tmp_path):
    line = fails("dream", CHELSEA, "-o", tmp_path / "out.png", "--device", "cuda")
    assert "cuda" in line.lower()


def test_bad_device_name(fails, tmp_path):
    line = fails("dream", CHELSEA, "-o", tmp_path / "out.png", "--device", "tpu")
    assert "tpu" in line


def test_googlenet_offline_without_weights_names_the_cache_path(fails, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", getattr(torch.hub, "_hub_dir", None))  # restored afterwards
    torch.hub.set_dir(str(tmp_path / "hub"))
    line = fails("dream", CHELSEA, "-o", tmp_path / "out.png", "--model", "googlenet", "--offline",
                 "--steps", "1", "--octaves", "1", "--max-side", "64")
    assert str(tmp_path / "hub" / "checkpoints" / "googlenet-1378be20.pth") in line
    assert "downloads are off" in line


# -- success paths (tiny, so each takes a second or two on CPU) -------------------------------


def test_dream_writes_a_png_of_the_right_aspect(run, tmp_path):
    out = tmp_path / "out.png"
    code, stdout, stderr = run("dream", CHELSEA, "-o", out, "--steps", "2", "--octaves", "2", "--max-side", "128")
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert stdout.startswith("wrote") and str(out) in stdout
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (128, 85)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temporary file left behind


def test_dream_writes_a_jpeg(run, tmp_path):
    out = tmp_path / "out.jpg"
    code, stdout, stderr = run("dream", CHELSEA, "-o", out, "--steps", "1", "--octaves", "1", "--max-side", "96")
    assert code == 0, stderr
    assert "wrote" in stdout
    with Image.open(out) as img:
        assert img.format == "JPEG" and img.mode == "RGB" and img.size == (96, 64)


def test_models(run):
    code, stdout, _ = run("models")
    assert code == 0
    assert "efficientnet-lite0" in stdout and "googlenet" in stdout


def test_layers_of_googlenet(run):
    code, stdout, _ = run("layers", "--model", "googlenet")
    assert code == 0
    assert "inception4c" in stdout and "presets" in stdout


def test_layers_of_an_unknown_model(fails):
    assert "goglenet" in fails("layers", "--model", "goglenet")


def test_classes_search(run):
    code, stdout, _ = run("classes", "fish")
    assert code == 0
    assert "anemone fish" in stdout
    assert all("fish" in line.lower() for line in stdout.splitlines())


def test_classes_search_without_match(fails):
    assert "xyzzy" in fails("classes", "xyzzy")


@pytest.mark.parametrize("ext", ["gif", "webp", "mp4"])
def test_zoom_writes_the_format_of_its_extension_with_the_frames_asked_for(run, tmp_path, ext):
    out = tmp_path / f"z.{ext}"
    fmt = ["--format", ext] if ext == "webp" else []  # a --format that agrees is welcome
    code, stdout, stderr = run("zoom", "-o", out, *fmt, "--frames", "3", "--frame-ms", "100", "--size", "64", "--steps", "1",
                               "--octaves", "1", "--loop", "seamless")
    assert code == 0, stderr
    assert f"wrote {out}: 3 frames, 64x64" in stdout and "seamless loop" in stdout
    if ext == "mp4":
        info = probe_clip(out.read_bytes())
        assert info.container == "mp4" and (info.frames, info.fps, info.size) == (3, 10.0, (64, 64))
        return
    with Image.open(out) as img:
        img.load()  # a WebP's frame duration is read with its first frame
        assert img.format == ext.upper() and img.n_frames == 3 and max(img.size) == 64 and img.info["duration"] == 100


def test_visualize_writes_a_png(run, tmp_path):
    out = tmp_path / "banana.png"
    code, stdout, stderr = run("visualize", "banana", "--steps", "10", "--size", "64", "-o", out)
    assert code == 0, stderr
    assert "wrote" in stdout and "banana" in stdout
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (64, 64)


# -- dreambot results prune ---------------------------------------------------------------------


@pytest.fixture
def old_results(database_url, tmp_path, monkeypatch):
    """A database and RESULTS_DIR (through the environment) holding two results 40 days old (3 and 5
    bytes) and one a day old; the old files' paths."""
    import asyncio

    from sqlalchemy import update

    from bot.results import LocalResults
    from bot.store import Asker, Store
    from bot.store.models import Job
    from tests.bot.fake_runners import fake_spec
    from tests.bot.store.helpers import NO_LIMITS, new_job

    results = LocalResults(tmp_path / "results")

    async def fill() -> list[Path]:
        async with Store.open(database_url, upgrade=True, limits=NO_LIMITS) as store:
            old = []
            for data, days in ((b"abc", 40), (b"12345", 40), (b"new", 1)):
                job_id = await new_job(store, fake_spec(), Asker("console:ops"), owner="A")
                location = await results.save(job_id, data, "image/png")
                assert await store.jobs.finish(job_id, {"total": 1.0}, location, "image/png", owner="A")
                async with store.database.writing() as session:
                    await session.execute(update(Job).where(Job.id == job_id).values(finished_at=Job.finished_at - days * 86400))
                if days > 30:
                    old.append(results.folder / location)
            return old

    monkeypatch.chdir(tmp_path)  # no .env from elsewhere
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("RESULTS_DIR", str(results.folder))
    monkeypatch.setenv("RESULT_RETENTION_DAYS", "30")
    return asyncio.run(fill())


def test_results_prune_dry_run_deletes_nothing_and_says_what_the_real_run_then_deletes(run, old_results):
    code, dry, err = run("results", "prune", "--dry-run")
    assert (code, err) == (0, "")
    assert dry == "would delete 2 result files (8 bytes) older than 30 days\n"
    assert all(path.exists() for path in old_results)
    code, real, err = run("results", "prune")
    assert (code, err) == (0, "")
    assert real == "deleted 2 result files (8 bytes) older than 30 days\n"
    assert not any(path.exists() for path in old_results)
    assert run("results", "prune")[1] == "deleted 0 result files (0 bytes) older than 30 days\n"


def test_results_prune_takes_other_days_and_refuses_bad_ones_in_one_line(run, fails, old_results, monkeypatch):
    assert run("results", "prune", "--dry-run", "--days", "0.5")[1] == \
        "would delete 3 result files (11 bytes) older than 0.5 days\n"
    for bad in ("0", "-3", "soon", "nan", "inf"):
        assert f"argument --days: must be a number of days above 0, got '{bad}'" in fails("results", "prune", "--days", bad)
    assert "invalid choice" in fails("results", "tidy")
    monkeypatch.setenv("RESULT_RETENTION_DAYS", "-1")
    assert "result_retention_days" in fails("results", "prune").lower()
    monkeypatch.setenv("RESULT_RETENTION_DAYS", "0")
    forever = "results are kept forever (RESULT_RETENTION_DAYS is 0): nothing to prune; --days N prunes anyway\n"
    assert run("results", "prune") == (0, forever, "")
    assert all(path.exists() for path in old_results)


# -- the installed console script ------------------------------------------------------------


def test_console_script_reports_a_missing_file_in_one_line(tmp_path):
    script = Path(sys.executable).parent / "dreambot"
    assert script.exists(), "the dreambot console script is missing; run `pip install -e .` in the venv"
    result = subprocess.run([str(script), "dream", str(tmp_path / "gone.png"), "-o", str(tmp_path / "out.png")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "gone.png" in lines[0]
