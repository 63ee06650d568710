"""Is the page idle? The browser's own measure: time in long tasks (> 50 ms on the main thread)
while the user does nothing (issue 25 §6: a page busy ~99 % while idle made clicks take 12 s)."""
from __future__ import annotations

import time

LONG_TASKS = """(ms) => new Promise((done) => {
    let busy = 0;
    const observer = new PerformanceObserver((list) => { for (const e of list.getEntries()) busy += e.duration; });
    observer.observe({type: 'longtask', buffered: false});
    setTimeout(() => { observer.disconnect(); done(busy / 1000); }, ms);
})"""


def long_task_seconds(page, milliseconds: int) -> float:
    return page.evaluate(LONG_TASKS, milliseconds)


def settle(page, limit: float = 40.0) -> None:
    """Wait for a quiet 1.5 s (under 0.1 s of long tasks). What the last action started finishes first:
    the Inpaint editor's WebGL start-up after it mounts or loads an image is a burst of a few
    seconds in headless Chromium's software GL. A loop never goes quiet and fails here."""
    deadline = time.monotonic() + limit
    while long_task_seconds(page, 1500) >= 0.1:
        assert time.monotonic() < deadline, f"the page never went quiet for 1.5 s within {limit:.0f} s"


def idle_busy_seconds(page) -> float:
    """Seconds of the main thread's long tasks over 5 s with the user doing nothing, once the
    last action's own work is done."""
    settle(page)
    return long_task_seconds(page, 5000)
