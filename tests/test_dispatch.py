"""Who gets which file with `--devices`: on request, in order, and nothing lost or doubled
when a worker leaves (exits or dies) at any step."""

import multiprocessing
import pickle
from pathlib import Path

from fastesm_extract.results import FileJob
from fastesm_extract.running.dispatch import Dispatcher

JOBS = [FileJob(Path(f"in/{name}.fa"), Path(f"out/{name}_ESM.pt")) for name in "abcd"]
A, B, C, D = JOBS


def test_files_are_handed_one_per_request_in_order_then_none():
    dispatcher = Dispatcher(JOBS[:3], 2)
    assert dispatcher.ask(0) == [(0, A)]
    assert dispatcher.ask(1) == [(1, B)]
    assert dispatcher.took(0, A) == []
    assert dispatcher.ask(0) == [(0, C)]
    assert dispatcher.took(1, B) == [] and dispatcher.took(0, C) == []
    assert dispatcher.ask(1) == [(1, None)]
    assert dispatcher.ask(0) == [(0, None)]
    assert dispatcher.pending == []


def test_a_leaving_worker_returns_exactly_the_files_it_took_and_did_not_finish():
    dispatcher = Dispatcher(JOBS, 2)
    dispatcher.ask(0), dispatcher.took(0, A), dispatcher.ask(0), dispatcher.took(0, B)
    dispatcher.finished(0, A)
    dispatcher.ask(0)  # C handed, never taken: the worker never began it
    unfinished, answers = dispatcher.leave(0)
    assert unfinished == [B]
    assert answers == [] and dispatcher.pending == [C, D]  # C first again: the larger
    assert dispatcher.ask(1) == [(1, C)]


def test_a_file_in_transit_to_a_dying_worker_goes_to_one_that_waits():
    dispatcher = Dispatcher([A], 2)
    assert dispatcher.ask(0) == [(0, A)]
    # Nothing left to hand, but A may come back: worker 1 is not told "no more" yet.
    assert dispatcher.ask(1) == []
    assert dispatcher.leave(0) == ([], [(1, A)])
    assert dispatcher.took(1, A) == []
    assert dispatcher.ask(1) == [(1, None)]


def test_a_waiting_worker_is_told_no_more_once_the_file_in_transit_is_taken():
    dispatcher = Dispatcher([A], 2)
    dispatcher.ask(0)
    assert dispatcher.ask(1) == []
    assert dispatcher.took(0, A) == [(1, None)]
    assert dispatcher.leave(0) == ([A], [])  # taken, then lost: not handed to anyone else
    assert dispatcher.pending == []


def test_files_of_a_worker_that_left_are_never_handed_to_it_again():
    dispatcher = Dispatcher(JOBS[:2], 2)
    dispatcher.ask(0)
    dispatcher.leave(0)
    assert dispatcher.ask(1) == [(1, A)]
    assert dispatcher.took(1, A) == []
    assert dispatcher.ask(1) == [(1, B)]  # worker 0 is gone: nothing in transit to wait for
    assert dispatcher.took(1, B) == [] and dispatcher.ask(1) == [(1, None)]


def test_messages_up_to_a_worker_killed_mid_message_are_read_then_the_pipe_ends():
    from fastesm_extract.running.parallel import _Worker

    reader, writer = multiprocessing.Pipe(duplex=False)
    writer.send(("took", A))
    payload = pickle.dumps(("done", "x" * 100))
    writer._send(len(payload).to_bytes(4, "big") + payload[:10])  # killed while writing
    writer.close()
    worker = _Worker(multiprocessing.current_process(), reader, reader)
    assert list(worker.messages()) == [("took", A)]
    assert worker.events is None and list(worker.messages()) == []
