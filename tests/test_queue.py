"""The studio's job queue (studio/service/queue.py): round-robin fairness, a bounded size, per-job stop events.

Order is checked, never timing: each test holds the queue with a gate job until every other job is
waiting, so the order the queue picks is the only thing that decides what runs when."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from studio.request import GenerationRequest
from studio.service.container import Services, build_services
from studio.service.queue import JobCancelled, JobQueue, QueueFullError
from studio.settings import Settings

TIMEOUT = 120


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def run_jobs(queue: JobQueue, plan: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Queue each (owner, iterations) job behind a gate, release the gate, return the turns in order."""
    order: list[tuple[str, int]] = []
    gate = queue.add("gate")
    gate_open = threading.Event()

    def hold() -> None:
        with queue.turn(gate):
            gate_open.wait(TIMEOUT)
        queue.finish(gate)

    def work(owner: str, iterations: int) -> None:
        job = queue.add(owner, iterations=iterations)
        for iteration in range(iterations):
            with queue.turn(job):
                order.append((owner, iteration))
        queue.finish(job)

    threads = [threading.Thread(target=hold)]
    threads[0].start()
    wait_until(lambda: queue.active is gate)
    for owner, iterations in plan:  # one at a time, so arrival order is the plan's order
        threads.append(threading.Thread(target=work, args=(owner, iterations)))
        threads[-1].start()
        wait_until(lambda: len(queue.jobs()) == len(threads))
    wait_until(lambda: len(queue._waiting) == len(plan))
    gate_open.set()
    for thread in threads:
        thread.join(TIMEOUT)
    return order


def test_a_long_batch_yields_to_other_users_between_iterations():
    order = run_jobs(JobQueue(), [("alice", 4), ("bob", 1), ("carol", 2)])
    assert order == [("alice", 0), ("bob", 0), ("carol", 0), ("alice", 1), ("carol", 1), ("alice", 2), ("alice", 3)]


def test_one_users_jobs_run_in_their_order_and_do_not_jump_other_users():
    order = run_jobs(JobQueue(), [("alice", 1), ("alice", 1), ("bob", 1)])
    assert order == [("alice", 0), ("bob", 0), ("alice", 0)]


def test_the_queue_refuses_a_job_beyond_its_size_and_takes_one_again_when_a_job_left():
    queue = JobQueue(size=2)
    first, _ = queue.add("alice"), queue.add("bob")
    with pytest.raises(QueueFullError, match="queue is full"):
        queue.add("carol")
    queue.finish(first)
    assert queue.add("carol").owner == "carol"


def test_a_cancelled_queued_job_leaves_without_running_and_the_running_one_goes_on():
    queue = JobQueue()
    running, queued = queue.add("alice"), queue.add("bob")
    outcome: dict[str, object] = {}

    def wait_for_turn() -> None:
        try:
            with queue.turn(queued):
                outcome["ran"] = True
        except JobCancelled:
            outcome["cancelled"] = True
        queue.finish(queued)

    with queue.turn(running):
        waiter = threading.Thread(target=wait_for_turn)
        waiter.start()
        wait_until(lambda: queued in queue._waiting)
        assert queue.place(queued).position == 2 and queue.place(queued).ahead == 1
        assert queue.interrupt(owner="bob") == 1
        waiter.join(TIMEOUT)
        assert outcome == {"cancelled": True}
        assert not running.interrupt.is_set()  # bob's interrupt never touches alice's job
    assert queue.jobs() == [running]


def test_place_and_eta_come_from_measured_step_times():
    now = [0.0]
    queue = JobQueue(clock=lambda: now[0])
    running = queue.add("alice", steps=10, iterations=2)
    waiting = queue.add("bob", steps=4, iterations=1)
    assert queue.place(waiting).eta is None  # nothing measured yet: "measuring…"
    with queue.turn(running):
        for step in range(1, 4):  # 0.5 s per step
            now[0] += 0.5
            queue.note_step(running, type("P", (), {"step": step})())
        place = queue.place(waiting)
        # alice's 7 steps left in this iteration, then bob (round-robin) before alice's second iteration
        assert (place.position, place.ahead) == (2, 1)
        assert place.wait == pytest.approx(7 * 0.5) and place.eta == pytest.approx((7 + 4) * 0.5)
        assert "position 2 (1 job(s) ahead) · ETA 0:06" in place.text()
        assert queue.place(running).eta == pytest.approx((7 + 4 + 10) * 0.5)


def test_the_queued_eta_shrinks_as_the_job_ahead_progresses():
    """Issue 25 §11: the job ahead's remaining steps × its own measured step time; a slow start
    (loading, prompts) before its first step does not count, and the ETA never grows at a steady pace."""
    now = [0.0]
    queue = JobQueue(clock=lambda: now[0])
    before = queue.add("carol", steps=3, iterations=1)  # an earlier, much slower job (another size)
    with queue.turn(before):
        for step in range(1, 4):
            now[0] += 5.0
            queue.note_step(before, type("P", (), {"step": step, "image": 0})())
    running = queue.add("alice", steps=20, iterations=1)
    waiting = queue.add("bob", steps=4, iterations=1)
    etas = []
    with queue.turn(running):
        now[0] += 30.0  # a slow first step (warm-up)
        queue.note_step(running, type("P", (), {"step": 1, "image": 0})())
        for step in range(2, 9):  # then 0.5 s per step
            now[0] += 0.5
            queue.note_step(running, type("P", (), {"step": step, "image": 0})())
            etas.append(queue.place(waiting).wait)
    assert queue.seconds_per_step == pytest.approx(0.5)
    assert etas == sorted(etas, reverse=True) and etas[-1] == pytest.approx((20 - 8) * 0.5)


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Services:
    root = tmp_path_factory.mktemp("queue")
    return build_services(Settings(models_dir=root / "models", outputs_dir=root / "outputs", extensions_dir=root / "ext",
                                  cache_dir=root / "cache", styles_file=root / "styles.csv"))


REQUEST = GenerationRequest(prompt="a red circle", steps=2, width=64, height=64, seed=77, sampler_name="Euler")


def test_a_batch_count_job_on_the_real_engine_lets_another_users_job_run_between_its_iterations(studio):
    order: list[tuple[str, int]] = []
    results: dict[str, object] = {}
    bob_waiting = threading.Event()

    def on_step(owner: str) -> Callable:
        def step(progress) -> None:
            if progress.step == 1:
                order.append((owner, progress.image))
            if owner == "alice" and progress.image == 0:
                bob_waiting.wait(TIMEOUT)  # bob joins while alice's first iteration runs
        return step

    alice = threading.Thread(target=lambda: results.update(
        alice=studio.generation.submit(REQUEST.replace(n_iter=3), on_step("alice"), owner="alice")))
    alice.start()
    wait_until(lambda: studio.generation.queue.active is not None)
    bob = threading.Thread(target=lambda: results.update(
        bob=studio.generation.submit(REQUEST.replace(seed=5), on_step("bob"), owner="bob")))
    bob.start()
    wait_until(lambda: len(studio.generation.queue._waiting) == 1)
    bob_waiting.set()
    alice.join(TIMEOUT)
    bob.join(TIMEOUT)
    assert order == [("alice", 0), ("bob", 0), ("alice", 1), ("alice", 2)]
    job = results["alice"]
    assert [image.seed for image in job.images] == [77, 78, 79] and not job.interrupted
    # Taking turns does not change an image: alice's second equals a run of its seed alone.
    alone = studio.generation.submit(REQUEST.replace(seed=78), save=False)
    assert np.array_equal(np.asarray(job.images[1].image), np.asarray(alone.images[0].image))
    assert all(Path(image.path).is_file() for image in job.images)
    assert studio.generation.queue.jobs() == []


def test_interrupting_one_owner_stops_only_its_job(studio):
    results: dict[str, object] = {}
    started = threading.Event()

    def on_step(progress) -> None:
        started.set()

    alice = threading.Thread(target=lambda: results.update(
        alice=studio.generation.submit(REQUEST.replace(steps=40, n_iter=2), on_step, owner="alice", save=False)))
    alice.start()
    started.wait(TIMEOUT)
    bob = threading.Thread(target=lambda: results.update(bob=studio.generation.submit(REQUEST, owner="bob", save=False)))
    bob.start()
    wait_until(lambda: len(studio.generation.queue._waiting) == 1)
    studio.generation.interrupt(owner="bob")  # bob leaves the queue; alice is untouched
    bob.join(TIMEOUT)
    assert results["bob"].interrupted and results["bob"].images == []
    assert alice.is_alive() and not studio.generation.queue.jobs(owner="alice")[0].interrupt.is_set()
    studio.generation.interrupt(owner="alice")
    alice.join(TIMEOUT)
    assert results["alice"].interrupted
    assert studio.generation.queue.jobs() == []


def test_admin_interrupt_makes_a_tabs_interrupt_stop_whoever_runs_but_closing_a_tab_never_does(studio):
    admin = build_services(studio.settings.replace(admin_interrupt=True), engine=studio.generation.engine, extensions=studio.extensions.manager)
    results: dict[str, object] = {}
    started = threading.Event()
    alice = threading.Thread(target=lambda: results.update(alice=admin.generation.submit(
        REQUEST.replace(steps=60), lambda progress: started.set(), owner="alice", save=False)))
    alice.start()
    started.wait(TIMEOUT)
    ui = admin.generation
    ui.close_session("someone-else")  # a closed tab only ever cancels its own jobs
    assert alice.is_alive() and not admin.generation.queue.jobs(owner="alice")[0].interrupt.is_set()
    ui.interrupt(session="someone-else")  # --admin-interrupt: any tab's Interrupt stops the running job
    alice.join(TIMEOUT)
    assert results["alice"].interrupted


def test_a_scripts_jobs_are_queued_for_whoever_started_the_script(studio):
    owners: list[str] = []
    with studio.generation.acting_for("user:alice", "tab-1"):  # what the UI does around a script run
        studio.generation.submit(REQUEST, lambda progress: owners.append(studio.generation.queue.active.owner + "/" + studio.generation.queue.active.session),
                      save=False)
    studio.generation.submit(REQUEST, lambda progress: owners.append(studio.generation.queue.active.owner), save=False)
    assert owners[0] == "user:alice/tab-1" and owners[-1] == "local"


def test_queue_size_and_admin_interrupt_flags_and_user_names_that_cannot_be_folders(tmp_path):
    from studio.cli.main import build_parser
    from studio.cli.settings_flags import settings_from_args
    from studio.service.users import UserNameError, check_user_names, outputs_for

    parse = lambda *argv: settings_from_args(build_parser().parse_args(["serve", *argv]))  # noqa: E731
    assert (parse().queue_size, parse().admin_interrupt) == (16, False)
    assert (parse("--queue-size", "3", "--admin-interrupt").queue_size, parse("--admin-interrupt").admin_interrupt) == (3, True)
    with pytest.raises(SystemExit):
        parse("--queue-size", "0")
    check_user_names(("only/one",))  # one user: outputs stay in outputs/, any name will do
    for bad in ("../x", "a/b", ".hidden", "txt2img-images"):
        with pytest.raises(UserNameError):
            check_user_names(("alice", bad))
    assert outputs_for(tmp_path, ("alice", "bob"), "bob") == tmp_path / "bob"
    assert outputs_for(tmp_path, ("alice", "bob"), "mallory") == tmp_path  # not a user: in nobody's history
    assert outputs_for(tmp_path, ("alice",), "alice") == tmp_path
