"""Sharing a server between visitors: stores keyed by content, the job queue and its limits,
and when the trust switch may appear."""

import gc
from pathlib import Path
import threading
import time

import numpy as np
import pytest

from actviz.errors import BudgetError, Cancelled, SettingError
from actviz.serve.jobs import JobQueue, Limits, with_deadline
from actviz.serve.stores import BoundedStore, HeldResults
from actviz.serve.trust import trust_switch_allowed


class Result:
    """A stand-in for a forward pass result (weak-referenceable, like actviz.core.probe.Activations)."""

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
    with pytest.raises(SettingError, match="ACTVIZ_MAX_JOBS is 'many'; it takes a whole number of 1 or more"):
        Limits.from_env({"ACTVIZ_MAX_JOBS": "many"})
    with pytest.raises(SettingError, match="ACTVIZ_MAX_PATTERN_CHANNELS is 0; it takes a whole number of 1 or more"):
        Limits.from_env({"ACTVIZ_MAX_PATTERN_CHANNELS": "0"})
    assert Limits.from_env({}, fallback={"ACTVIZ_MEMORY_MB": "900"}).memory_mb == 900  # Streamlit secrets
    assert Limits.from_env({"ACTVIZ_MEMORY_MB": "700"}, fallback={"ACTVIZ_MEMORY_MB": "900"}).memory_mb == 700


def test_every_setting_has_one_policy():
    """Every ACTVIZ_* variable the code reads is in the table; a bad value names the variable and what it takes."""
    import re

    from actviz.settings import SETTINGS, value

    root = Path(__file__).resolve().parents[2]
    named = set()
    for path in [root / "app.py", *(root / "views").rglob("*.py"), *(root / "actviz").rglob("*.py")]:
        named |= set(re.findall(r"ACTVIZ_[A-Z_]+[A-Z]", path.read_text()))
    assert named - {"ACTVIZ_"} <= set(SETTINGS), sorted(named - set(SETTINGS))
    for name, setting in SETTINGS.items():
        if setting.kind in ("int", "float", "bool", "choice", "list"):
            with pytest.raises(SettingError, match=name):
                value(name, {name: "not-a-value"})
        assert value(name, {}) == setting.default


def test_one_job_per_visitor_and_each_visitors_first_job_first():
    """A visitor's second job waits behind every other visitor's first, even when it came earlier;
    with two slots, one visitor still runs one job at a time."""
    queue, order = JobQueue(slots=1), []
    release = threading.Event()
    started = threading.Event()

    def job(owner, name, hold=False):
        with queue.turn(owner=owner, poll=0.02):
            order.append(name)
            if hold:
                started.set()
                release.wait(10)

    threads = [threading.Thread(target=job, args=("a", "a1", True))]
    threads[0].start()
    started.wait(5)
    for number, (owner, name) in enumerate((("a", "a2"), ("a", "a3"), ("b", "b1"), ("c", "c1")), start=1):
        threads.append(threading.Thread(target=job, args=(owner, name)))
        threads[-1].start()
        _until(lambda: queue.waiting == number)
    release.set()
    for thread in threads:
        thread.join(10)
    assert order == ["a1", "b1", "c1", "a2", "a3"]

    two, running = JobQueue(slots=2), []
    gate = threading.Event()

    def held(owner):
        with two.turn(owner=owner, poll=0.02):
            running.append(owner)
            gate.wait(10)

    first = threading.Thread(target=held, args=("a",))
    first.start()
    _until(lambda: two.running == 1)
    second = threading.Thread(target=held, args=("a",))
    second.start()
    _until(lambda: two.waiting == 1)
    time.sleep(0.1)
    assert two.running == 1 and running == ["a"]  # a free slot, but this visitor already runs a job
    third = threading.Thread(target=held, args=("b",))
    third.start()
    _until(lambda: two.running == 2)
    assert running == ["a", "b"]
    gate.set()
    for thread in (first, second, third):
        thread.join(10)
    assert running == ["a", "b", "a"] and two.running == 0


def test_held_results_count_their_bytes_and_refuse_what_does_not_fit():
    store = HeldResults(max_bytes=1000, size=lambda v: v.nbytes)
    first = store.get("a", lambda: np.zeros(100), need=800)  # 800 bytes
    assert store.nbytes == 800
    with pytest.raises(BudgetError, match="other visitors' feature maps"):
        store.get("b", lambda: np.zeros(100), need=800)
    assert store.get("a", lambda: np.zeros(1)) is first  # held: shared, not computed again
    del first
    gc.collect()
    assert store.nbytes == 0 and len(store) == 0  # let go by its last visitor: the bytes are free again
    assert store.get("b", lambda: np.zeros(100), need=800).nbytes == 800


def test_memory_budget_shares_add_up_and_refuse_in_words():
    from actviz.serve.server import SHARES, MemoryBudget, make_server

    budget = MemoryBudget(2000 * 1024**2)
    assert sum(budget.share(part) for part in SHARES) <= budget.total
    with pytest.raises(BudgetError, match="This ZIP would take 300 MB.*at most 240 MB for uploaded data set ZIPs.*ACTVIZ_MEMORY_MB"):
        budget.refuse_over("sources", 300 * 1024**2, "This ZIP")
    made = make_server(Limits(memory_mb=1000, jobs=2))
    caps = [made.models.max_bytes, made.patterns.max_bytes, made.summaries.max_bytes, made.sources.max_bytes,
            made.explanations.max_bytes, made.pictures.max_bytes, made.results.max_bytes]
    assert sum(caps) + made.forward_bytes * 2 <= 1000 * 1024**2  # the stores and the jobs fit inside the budget


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
