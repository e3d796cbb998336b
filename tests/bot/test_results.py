"""Where results are kept (bot/results.py): LocalResults saves a result whole under its job's name,
reads it back by that name, and no location, however it is written, reaches a file outside its folder."""

from __future__ import annotations

import os

import pytest

from bot.results import LocalResults, result_name, thumbnail_name
from core.jobs import FILE_EXTENSIONS


def test_a_results_name_is_its_jobs_with_the_extension_of_its_type():
    assert result_name(12, "image/png") == "job-12.png"
    assert result_name(7, "image/jpeg") == "job-7.jpg"
    assert result_name(3, "video/mp4") == "job-3.mp4"
    assert {result_name(1, mime).rsplit(".", 1)[1] for mime in FILE_EXTENSIONS} == set(FILE_EXTENSIONS.values())
    with pytest.raises(KeyError):
        result_name(1, "text/plain")  # the engine makes no such result


async def test_a_saved_result_is_read_back_by_its_location(tmp_path):
    results = LocalResults(tmp_path / "made" / "on" / "first use")
    assert results.folder.is_dir(), "the folder is created"
    location = await results.save(5, b"png bytes", "image/png")
    assert location == "job-5.png"
    assert await results.read(location) == b"png bytes"
    assert results.path(location) == results.folder / "job-5.png"
    assert results.describe(location) == str(results.folder / "job-5.png")
    assert await results.save(5, b"made again", "image/png") == location
    assert await results.read(location) == b"made again", "saving again replaces the result"
    assert sorted(p.name for p in results.folder.iterdir()) == ["job-5.png"], "no temporary file is left behind"


async def test_a_result_that_is_gone_reads_as_none(tmp_path):
    results = LocalResults(tmp_path)
    assert await results.read("job-9.png") is None and results.path("job-9.png") is None
    location = await results.save(9, b"x", "image/gif")
    (tmp_path / location).unlink()
    assert await results.read(location) is None and results.path(location) is None
    (tmp_path / "job-10.png").mkdir()  # not a file
    assert results.path("job-10.png") is None


@pytest.mark.parametrize("location", ["../outside.png", "{tmp}/outside.png", "{folder}/../outside.png", "/etc/passwd",
                                      "{folder}/.job-1.png.partial", ".hidden.png", "", "/", ".."])
async def test_no_location_reaches_a_file_outside_the_folder_or_a_half_written_one(tmp_path, location):
    folder = tmp_path / "results"
    results = LocalResults(folder)
    (tmp_path / "outside.png").write_bytes(b"not a result")
    (folder / ".job-1.png.partial").write_bytes(b"half")
    (folder / ".hidden.png").write_bytes(b"half")
    location = location.format(tmp=tmp_path, folder=folder)
    assert results.path(location) is None, location
    assert await results.read(location) is None, location


async def test_an_older_rows_full_path_is_read_by_its_name_in_the_folder(tmp_path):
    results = LocalResults(tmp_path / "results")
    await results.save(4, b"kept", "image/webp")
    for location in ("/srv/old/results/job-4.webp", "results/job-4.webp", "../job-4.webp"):
        assert await results.read(location) == b"kept", location
        assert results.describe(location) == str(results.folder / "job-4.webp")


async def test_a_write_that_fails_leaves_neither_a_result_nor_a_temporary_file(tmp_path, monkeypatch):
    results = LocalResults(tmp_path)
    await results.save(1, b"first", "image/png")

    def failing_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        await results.save(1, b"second", "image/png")
    with pytest.raises(OSError, match="disk full"):
        await results.save(2, b"other", "image/png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job-1.png"]
    assert await results.read("job-1.png") == b"first", "the earlier result stays whole"


async def test_a_result_is_removed_once_with_its_size_and_usage_counts_only_results(tmp_path):
    results = LocalResults(tmp_path / "results")
    kept = await results.save(1, b"12345", "image/png")
    gone = await results.save(2, b"abc", "image/gif")
    (results.folder / ".job-3.png.partial").write_bytes(b"half written")  # a result being written is not counted
    (tmp_path / "outside.png").write_bytes(b"not a result")
    assert (results.size(kept), results.size(gone), results.usage()) == (5, 3, (2, 8))
    assert results.remove(gone) == 3
    assert results.remove(gone) is None and results.size(gone) is None, "already gone: nothing freed twice"
    assert results.remove("../outside.png") is None and (tmp_path / "outside.png").exists() and results.usage() == (1, 5)


async def test_a_thumbnail_is_kept_beside_its_result_and_removed_with_it(tmp_path):
    results = LocalResults(tmp_path)
    location = await results.save(5, b"a" * 1000, "image/png")
    assert results.thumbnail_path(location) is None, "none until one is made"
    await results.save_thumbnail(location, b"t" * 100)
    assert results.thumbnail_path(location) == tmp_path / "job-5.thumb.webp" == tmp_path / thumbnail_name(location)
    assert results.usage() == (1, 1100), "one result, its bytes with its thumbnail's"
    assert results.remove(location) == 1100 and results.thumbnail_path(location) is None
    assert results.remove(location) is None and results.usage() == (0, 0)
    assert results.thumbnail_path("../job-5.png") is None
