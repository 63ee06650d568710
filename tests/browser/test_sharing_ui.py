"""Two (and three) people on one server, each in their own browser context (issue 17): each sees only
their own queue place, progress and results; Interrupt and Cancel act on their own job only; a full
queue says so; closing a tab drops its jobs."""
from __future__ import annotations

import os
import re
from contextlib import ExitStack
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser.conftest import screenshot, started_server, studio_page

pytestmark = pytest.mark.browser
LONG = 150  # steps: long enough to act while it runs; it is always interrupted early


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory):
    os.environ["GRADIO_HEARTBEAT_INTERVAL"] = "1"  # the server notices a closed tab within a second
    try:
        with started_server(tmp_path_factory.mktemp("shared"), ["--queue-size", "2"]) as running:
            yield running
    finally:
        os.environ.pop("GRADIO_HEARTBEAT_INTERVAL", None)


def start(page, seed: int, steps: int) -> None:
    page.fill("#txt2img_prompt textarea", f"a circle number {seed}")
    field = page.locator("#txt2img_steps input[type=number]").first
    field.fill(str(steps))
    field.press("Tab")
    if steps == LONG:  # a larger image for the long job, so that it is still running when it is interrupted
        width = page.locator("#txt2img_width input[type=number]").first
        width.fill("192")
        width.press("Tab")
    page.fill("#txt2img_seed input", str(seed))
    page.click("#txt2img_generate")


def status(page) -> str:
    return page.locator("#txt2img_status").inner_text()


def wait_running(page) -> None:
    """The job's own progress shows in its own page (Gradio's progress text over the gallery)."""
    page.wait_for_function(f"document.body.innerText.match(/Step [1-9][0-9]*\\/{LONG}/)", timeout=60_000)


def wait_seed(page, seed: int) -> None:
    page.wait_for_function(
        f"document.querySelector('#txt2img_infotext textarea')?.value.includes('Seed: {seed}')", timeout=120_000)


def queue_when_there_is_room(page, seed: int, attempts: int = 20) -> None:
    """Generate again after each "queue is full", as a user does: the server drops a closed tab's job
    once it misses its heartbeat, which takes its own time on a busy machine. Ends queued at place 2."""
    refusals = "document.body.innerText.split('queue is full').length - 1"
    for _ in range(attempts):
        before = page.evaluate(refusals)
        start(page, seed, 3)
        try:
            page.wait_for_function(f"document.querySelector('#txt2img_status')?.innerText.includes('position 2')"
                                   f" || ({refusals}) > {before}", timeout=60_000)
        except PlaywrightTimeout:
            pass
        if "position 2" in status(page):
            return
        page.wait_for_timeout(1000)
    raise AssertionError(f"never queued after {attempts} tries: {status(page)!r}")


def saved_with_seed(outputs: Path, seed: int) -> list[Path]:
    return list(outputs.rglob(f"*-{seed}.png"))


def test_two_browsers_see_their_own_queue_progress_and_results_and_interrupt_only_their_own(browser, shared_server):
    url = shared_server.url
    with studio_page(browser, url) as alice, studio_page(browser, url) as bob:
        start(alice, 101, LONG)
        wait_running(alice)
        start(bob, 202, 3)
        bob.wait_for_function("document.querySelector('#txt2img_status')?.innerText.includes('In queue: position 2')",
                              timeout=60_000)
        assert "1 job(s) ahead" in status(bob) and bob.locator("#txt2img_cancel").is_visible()
        assert not re.search(rf"Step \d+/{LONG}", bob.locator("body").inner_text())  # not alice's progress
        assert "In queue" not in status(alice) and not alice.locator("#txt2img_cancel").is_visible()
        screenshot(bob, "sharing_queued")

        bob.click("#txt2img_interrupt")  # bob's Interrupt: his queued job leaves; alice's goes on
        bob.wait_for_function("document.querySelector('#txt2img_status')?.innerText.includes('Cancelled')",
                              timeout=60_000)
        before = alice.evaluate(f"(() => {{ const m = document.body.innerText.match(/Step (\\d+)\\/{LONG}/); "
                                f"return m ? +m[1] : 0; }})()")
        alice.wait_for_function(
            f"(() => {{ const m = document.body.innerText.match(/Step (\\d+)\\/{LONG}/); return m && +m[1] > {before + 2}; }})()",
            timeout=60_000)

        start(bob, 202, 3)  # queued again, then alice stops her own job: bob's runs and is his alone
        bob.wait_for_function("document.querySelector('#txt2img_status')?.innerText.includes('position 2')",
                              timeout=60_000)
        alice.click("#txt2img_interrupt")
        alice.wait_for_function("document.querySelector('#txt2img_status')?.innerText.includes('Interrupted')",
                                timeout=60_000)
        wait_seed(bob, 202)
        screenshot(bob, "sharing_result")
        bob.wait_for_selector("#txt2img_gallery img", timeout=60_000)
        assert "Seed: 202" not in alice.input_value("#txt2img_infotext textarea")  # never bob's image
        # alice's interrupted image is kept and saved (A1111's way, issue 25 §7); bob's is his alone
        assert len(saved_with_seed(shared_server.outputs, 101)) == 1 and len(saved_with_seed(shared_server.outputs, 202)) == 1


def test_a_full_queue_says_so_and_a_closed_tab_leaves_the_queue(browser, shared_server):
    url, outputs = shared_server.url, shared_server.outputs
    with ExitStack() as stack:
        alice = stack.enter_context(studio_page(browser, url))
        carol = stack.enter_context(studio_page(browser, url))
        bob_context = browser.new_context(viewport={"width": 1280, "height": 1000})
        bob = bob_context.new_page()
        bob.goto(url)
        bob.wait_for_selector("#txt2img_generate", timeout=60_000)

        start(alice, 301, LONG)
        wait_running(alice)
        start(bob, 302, LONG)
        bob.wait_for_function("document.querySelector('#txt2img_status')?.innerText.includes('In queue')",
                              timeout=60_000)
        start(carol, 303, 3)  # --queue-size 2: alice runs, bob waits, carol is told to come back
        carol.wait_for_selector("text=queue is full", timeout=60_000)
        screenshot(carol, "sharing_queue_full")

        bob_context.close()  # bob closes his tab: his queued job leaves the queue
        queue_when_there_is_room(carol, 303)

        alice.close()  # alice closes hers while her job runs: it stops at the next step, carol's runs
        wait_seed(carol, 303)
    # alice's running job stopped when her tab closed and kept its image in progress (issue 25 §7); bob's never ran
    assert len(saved_with_seed(outputs, 301)) == 1 and not saved_with_seed(outputs, 302)
    assert len(saved_with_seed(outputs, 303)) == 1
