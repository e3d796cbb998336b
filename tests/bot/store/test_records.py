"""The plain records the store hands out (`records`): frozen values, a job's inputs kept out of its
repr, totals derived from their parts, and one family of store errors."""

from __future__ import annotations

import dataclasses

import pytest

from bot.store.records import Admission, GalleryItem, JobRecord, NotFound, SchemaOutdated, Stats, StoreError


def a_record(**changes) -> JobRecord:
    record = JobRecord(id=1, user_id="alice", guild_id="g1", channel_id="c1", kind="dream", params={"layer": "block13"},
                       seed=7, status="done", error=None, created_at=1.0, started_at=2.0, finished_at=3.0,
                       timings={"dream": 1.0}, result_location="results/1.png", result_message_link=None)
    return dataclasses.replace(record, **changes)


def test_records_are_frozen_values() -> None:
    record = a_record()
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.status = "failed"  # type: ignore[misc]
    assert a_record() == record and a_record(seed=8) != record
    assert dataclasses.replace(record, status="failed").status == "failed" and record.status == "done"


def test_a_job_records_inputs_stay_out_of_its_repr_and_out_of_listings() -> None:
    record = a_record(image=b"\x89PNG secret bytes", guide=b"guide bytes")
    assert "secret" not in repr(record) and "guide bytes" not in repr(record)
    assert "alice" in repr(record)
    assert (a_record().image, a_record().guide) == (None, None), "a listing loads no inputs"


def test_fields_added_by_later_revisions_default_to_what_an_older_row_means() -> None:
    record = a_record()
    assert (record.owner, record.delivery, record.delivery_attempts, record.front, record.result_removed) == (
        None, None, 0, None, None)
    item = GalleryItem(id=1, job_id=1, guild_id="g1", channel_id="c1", message_link="https://discord/1", kind="dream",
                       params={}, likes=0, created_at=1.0, user_id="alice", seed=7, command=None,
                       result_location=None, result_type=None)
    assert item.result_removed is None, "an entry's file is kept unless the store says otherwise"


def test_stats_count_every_job_once() -> None:
    stats = Stats(jobs_by_status={"queued": 2, "done": 5, "failed": 1}, jobs_by_kind={"dream": 6, "zoom": 2},
                  users=3, gallery_entries=1, likes=4)
    assert stats.jobs == 8 == sum(stats.jobs_by_kind.values())
    assert Stats(jobs_by_status={}, jobs_by_kind={}, users=0, gallery_entries=0, likes=0).jobs == 0


def test_an_admission_is_allowed_with_no_wait_unless_refused() -> None:
    allowed = Admission(True, job_id=3)
    assert (allowed.retry_after, allowed.refusal, allowed.limit) == (0.0, "", 0.0)
    refused = Admission(False, retry_after=12.5, refusal="user_rate", limit=3)
    assert refused.job_id is None and not refused.allowed


def test_the_store_errors_are_one_family() -> None:
    assert issubclass(NotFound, StoreError) and issubclass(SchemaOutdated, StoreError)
    with pytest.raises(StoreError, match="^no job 7$"):
        raise NotFound("no job 7")
