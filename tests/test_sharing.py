"""Sharing a server between visitors: stores keyed by content, the job queue and its limits,
and when the trust switch may appear."""

import gc
import threading
import time

import numpy as np
import pytest

from actviz.errors import ActvizError, BudgetError, Cancelled
from actviz.jobs import JobQueue, Limits, with_deadline
from actviz.sharing import BoundedStore, HeldResults
from actviz.trust import trust_switch_allowed


class Result:
    """A stand-in for a forward pass result (weak-referenceable, like actviz.probe.Activations)."""

    def __init__(self, value):
        self.value = value


def test_held_results_shared_while_held_and_freed_when_let_go():
    store, calls = HeldResults(), []

    def compute():
        calls.append(1)
        return Result(np.zeros(10))

    first = store.get("image A", compute)
    second = store.get("image A", compute)  # a second visitor on the same image shares it
    assert first is second and len(calls) == 1
    other = store.get("image B", compute)  # a visitor on another image evicts nobody
    assert store.get("image A", compute) is first and len(calls) == 2
    del first, second
    gc.collect()
    assert len(store) == 1  # nobody shows image A any more: it is gone
    store.get("image A", compute)
    assert len(calls) == 3 and other.value.shape == (10,)


def test_held_results_compute_once_for_simultaneous_visitors():
    store, calls, results = HeldResults(), [], []
    gate = threading.Event()

    def compute():
        calls.append(1)
        gate.wait(5)
        return Result(1)

    threads = [threading.Thread(target=lambda: results.append(store.get("same", compute))) for _ in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    gate.set()
    for thread in threads:
        thread.join(10)
    assert len(calls) == 1 and len({id(r) for r in results}) == 1


def test_bounded_store_least_recently_used_and_bytes():
    store = BoundedStore(max_entries=3, max_bytes=100, size=lambda v: v.nbytes)
    for key in "abc":
        store.put(key, np.zeros(10, np.uint8))
    store.peek("a")  # used: "b" is now the oldest
    store.put("d", np.zeros(10, np.uint8))
    assert "b" not in store and {"a", "c", "d"} <= {k for k in "abcd" if k in store}
    store.put("big", np.zeros(90, np.uint8))  # 120 bytes in all: the oldest go until it fits
    assert store.nbytes <= 100 and "big" in store
    store.put("huge", np.zeros(101, np.uint8))  # larger than the store on its own: not kept
    assert "huge" not in store
    assert store.get("e", lambda: np.ones(1, np.uint8))[0] == 1 and "e" in store


def _until(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true"
        time.sleep(0.01)


def test_job_queue_runs_one_at_a_time_in_arrival_order():
    queue, order, ahead_seen = JobQueue(slots=1), [], {}
    first_running = threading.Event()
    release = threading.Event()

    def first():
        with queue.turn():
            first_running.set()
            release.wait(60)
            order.append("first")

    def later(name):
        def waiting(ahead):
            ahead_seen.setdefault(name, ahead)

        with queue.turn(waiting=waiting, poll=0.02):
            order.append(name)

    threads = [threading.Thread(target=first)]
    threads[0].start()
    first_running.wait(5)
    for waiting, name in enumerate(("second", "third"), start=1):
        threads.append(threading.Thread(target=later, args=(name,)))
        threads[-1].start()
        _until(lambda: queue.waiting == waiting)  # in line before the next one comes, however busy the machine
    assert queue.running == 1 and queue.waiting == 2
    release.set()
    for thread in threads:
        thread.join(10)
    assert order == ["first", "second", "third"]
    assert ahead_seen == {"second": 1, "third": 2}
    assert queue.running == 0 and queue.waiting == 0


def test_job_queue_gives_up_a_place_when_the_visitor_leaves():
    queue = JobQueue(slots=1)
    holding = threading.Event()
    release = threading.Event()

    def holder():
        with queue.turn():
            holding.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    holding.wait(5)

    def leave(ahead):
        raise KeyboardInterrupt  # a visitor who chose something else (Streamlit stops the script)

    with pytest.raises(KeyboardInterrupt):
        with queue.turn(waiting=leave):
            pass
    assert queue.waiting == 0
    release.set()
    thread.join(5)
    with queue.turn():
        assert queue.running == 1


def test_limits_from_environment():
    limits = Limits.from_env({"ACTVIZ_MAX_JOBS": "2", "ACTVIZ_MAX_PATTERN_STEPS": "40", "ACTVIZ_MAX_JOB_SECONDS": "7.5"})
    assert (limits.jobs, limits.pattern_steps, limits.job_seconds) == (2, 40, 7.5)
    assert Limits.from_env({}) == Limits()
    with pytest.raises(ActvizError, match="ACTVIZ_MAX_JOBS must be a number"):
        Limits.from_env({"ACTVIZ_MAX_JOBS": "many"})
    with pytest.raises(ActvizError, match="above zero"):
        Limits.from_env({"ACTVIZ_MAX_PATTERN_CHANNELS": "0"})


def test_deadline_and_cancel():
    report = with_deadline(None, 0.05, what="The patterns")
    report(1, 10)
    time.sleep(0.1)
    with pytest.raises(BudgetError, match="stopped after 0 seconds.*2 of 10"):
        report(2, 10)
    with pytest.raises(Cancelled):
        with_deadline(lambda done, total: False, 60)(1, 2)


LOCAL = {"operator_allows": False, "server_address": "localhost", "remote_loopback": True}


def test_trust_switch_for_one_local_user_only():
    assert trust_switch_allowed(**LOCAL, host="localhost:8501", headers={"Host": "localhost:8501"})
    assert trust_switch_allowed(**LOCAL, host="127.0.0.1:8501", headers={"Host": "127.0.0.1:8501"})
    assert trust_switch_allowed(**{**LOCAL, "server_address": "0.0.0.0", "operator_allows": True}, host="example.org", headers={})


@pytest.mark.parametrize("header", [
    ("Forwarded", "for=203.0.113.7"), ("X-Forwarded-For", ""), ("X-Forwarded-For", "203.0.113.7"),
    ("X-Forwarded-Host", "example.org"), ("X-Forwarded-Proto", "https"), ("X-Real-IP", "203.0.113.7"),
    ("Via", "1.1 nginx"), ("x-real-ip", "10.0.0.1"), ("True-Client-IP", "1.2.3.4"), ("CF-Connecting-IP", "1.2.3.4"),
])
def test_trust_switch_hidden_behind_any_proxy_header(header):
    headers = {"Host": "127.0.0.1:8501", header[0]: header[1]}
    assert not trust_switch_allowed(**LOCAL, host="127.0.0.1:8501", headers=headers)


@pytest.mark.parametrize("host", ["[::1]:8501", "[::1]", "example.org", "localhost.evil.org:8501", "127.0.0.1:80x", "", None])
def test_trust_switch_hidden_for_other_hosts(host):
    assert not trust_switch_allowed(**LOCAL, host=host, headers={"Host": host or ""})


def test_trust_switch_hidden_when_listening_beyond_loopback_or_remote_peer():
    assert not trust_switch_allowed(**{**LOCAL, "server_address": ""}, host="localhost", headers={})
    assert not trust_switch_allowed(**{**LOCAL, "server_address": "0.0.0.0"}, host="localhost", headers={})
    assert not trust_switch_allowed(**{**LOCAL, "remote_loopback": False}, host="localhost", headers={})
