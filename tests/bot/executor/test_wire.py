"""What crosses between the executor and a worker (`_wire`): an error raised in a worker arrives as the
same DreamError class with the same message and attributes; any other error, or one the bot cannot
rebuild, degrades to one line for the user with the details kept for the log. Tasks and configs are
plain, frozen, picklable data."""

from __future__ import annotations

import asyncio
import dataclasses
import pickle
import threading

import pytest

from bot.executor import JobFailed, PoolExecutor, WorkerCrashed
from bot.executor._pool import _remote_error
from bot.executor._wire import BatchTask, ErrorInfo, WorkerConfig
from core.errors import DreamError, InvalidParameter, UnknownModel
from tests.bot.executor.running import FAKE, spec, submit
from tests.bot.waiting import LIMIT

pytestmark = pytest.mark.timeout(300)  # only stops a hung test: Ray's start can take a minute on a busy machine


class Outer:
    class NestedError(DreamError):
        """A DreamError whose qualified name has a dot."""


class HoldsALock(DreamError):
    def __init__(self, message: str):
        super().__init__(message)
        self.count = 3
        self.lock = threading.Lock()  # cannot be pickled


def raised(error: BaseException) -> BaseException:
    """`error` as a worker sees it: raised, with a traceback."""
    try:
        raise error
    except BaseException as exc:
        return exc


def across(info: ErrorInfo) -> ErrorInfo:
    """`info` after a trip through a pipe (or Ray's object store): pickled and unpickled."""
    return pickle.loads(pickle.dumps(info))


# -- on each backend ----------------------------------------------------------------------------------


async def test_dream_errors_keep_their_class_message_and_attributes(executor: PoolExecutor) -> None:
    (pid,) = executor.worker_pids()
    async with asyncio.timeout(LIMIT):
        with pytest.raises(InvalidParameter) as invalid:
            await submit(executor, "a", spec(fail="strength must be between 0.05 and 10"))
        with pytest.raises(UnknownModel) as unknown:
            await submit(executor, "b", spec(unknown_model="incepshun"))
        with pytest.raises(JobFailed) as bug:
            await submit(executor, "c", spec(bug="index out of range"))
        after = await submit(executor, "d", spec())
    assert type(invalid.value) is InvalidParameter and str(invalid.value) == "strength must be between 0.05 and 10"
    assert str(unknown.value) == "unknown model 'incepshun'; closest: inception"
    assert unknown.value.name == "incepshun" and unknown.value.suggestions == ["inception"]
    assert bug.value.remote_type == "builtins.RuntimeError" and "index out of range" in bug.value.remote_traceback
    assert "index out of range" not in str(bug.value)  # details go to the log, not to the user
    assert after.metadata["pid"] == pid  # errors do not cost the worker


# -- ErrorInfo -------------------------------------------------------------------------------------------


def test_a_dream_error_is_rebuilt_as_its_own_class_without_running_its_init_again() -> None:
    # UnknownName builds its message in __init__: called again with that message, it would garble it.
    info = across(ErrorInfo.from_exception(raised(UnknownModel("incepshun", ["inception", "inception_v3"]))))
    assert (info.module, info.qualname, info.type_name) == ("core.errors", "UnknownModel", "core.errors.UnknownModel")
    error = info.rebuild()
    assert type(error) is UnknownModel
    assert str(error) == "unknown model 'incepshun'; closest: inception, inception_v3"
    assert (error.name, error.suggestions) == ("incepshun", ["inception", "inception_v3"])


def test_a_dream_error_of_a_nested_class_is_found_by_its_qualified_name() -> None:
    info = across(ErrorInfo.from_exception(raised(Outer.NestedError("deep inside"))))
    assert info.qualname == "Outer.NestedError"
    error = info.rebuild()
    assert type(error) is Outer.NestedError and str(error) == "deep inside"


def test_attributes_that_cannot_be_pickled_are_left_behind_and_the_rest_travel() -> None:
    original = raised(HoldsALock("the worker's own lock"))
    info = across(ErrorInfo.from_exception(original))  # the whole ErrorInfo still pickles
    assert info.attributes == {"count": 3}
    error = info.rebuild()
    assert type(error) is HoldsALock and str(error) == "the worker's own lock"
    assert error.count == 3 and not hasattr(error, "lock")


def test_the_traceback_travels_as_text_naming_where_the_error_was_raised() -> None:
    def load_weights() -> None:
        raise KeyError("conv1.weight")

    try:
        load_weights()
    except KeyError as exc:
        info = across(ErrorInfo.from_exception(exc))
    assert "Traceback" in info.traceback and "load_weights" in info.traceback and "conv1.weight" in info.traceback
    assert info.message == "'conv1.weight'"


@pytest.mark.parametrize(("module", "qualname"), [
    ("builtins", "RuntimeError"),  # not a DreamError: a bug
    ("core.jobs", "JobSpec"),  # a class, but no exception
    ("core.errors", "quoted"),  # not a class at all
    ("core.errors", "NoSuchError"),  # a name the bot's copy of the module lacks
    ("plugin_only_the_worker_has", "PluginError"),  # a module the bot cannot import
    ("tests.bot.executor.test_wire", "make.<locals>.LocalError"),  # defined inside a function
], ids=["bug", "not-an-exception", "not-a-class", "unknown-name", "unknown-module", "local-class"])
def test_an_error_the_bot_cannot_rebuild_degrades_to_one_line_with_the_details_for_the_log(module: str, qualname: str) -> None:
    info = across(ErrorInfo(module, qualname, "boom\nsecond line of a long message", {"extra": 1}, "Traceback ...\nthe worker's frames"))
    assert info.rebuild() is None
    failed = _remote_error(info, "job-1")
    assert type(failed) is JobFailed
    assert str(failed) == f"something went wrong while running this job ({qualname}); the details are in the log"
    assert "\n" not in str(failed) and "boom" not in str(failed)
    assert failed.remote_type == f"{module}.{qualname}" and failed.remote_traceback == "Traceback ...\nthe worker's frames"


def test_an_executor_error_raised_in_a_worker_arrives_as_itself() -> None:
    error = across(ErrorInfo.from_exception(raised(WorkerCrashed("the inner pool lost a worker")))).rebuild()
    assert type(error) is WorkerCrashed and str(error) == "the inner pool lost a worker"


# -- tasks and configs ------------------------------------------------------------------------------------


def test_a_worker_config_and_a_batch_are_frozen_and_travel_whole() -> None:
    config = WorkerConfig(FAKE, "cuda:1", {"precision": "fp16", "max_pixels": 4_000_000}, ("inception", "lite0"), 4)
    assert across(config) == config  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.device = "cpu"  # type: ignore[misc]
    batch = BatchTask((("a", spec(seed=1)), ("b", spec(seed=2))))
    assert pickle.loads(pickle.dumps(batch)) == batch
    assert [job_id for job_id, _ in batch.jobs] == ["a", "b"], "the order of the jobs is the order of their cancel flags"
    with pytest.raises(dataclasses.FrozenInstanceError):
        batch.jobs = ()  # type: ignore[misc]
