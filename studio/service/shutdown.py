"""SIGTERM: stop the running job after its current step, keep what it finished, exit cleanly.

Images are saved as each one finishes (jobs.generate), so stopping the run loses at most the
batch in progress. When the job runs in another thread (the server), the handler waits for it
to return (at most GRACE_SECONDS), then exits with status 0; when the signal lands in the thread that runs the job
(the CLI), it only interrupts: the run returns, its finished images are saved and the CLI ends. Whatever happens, a watchdog started with the signal ends the process
EXIT_WITHIN_SECONDS after it (a thread stuck in a parse or in a library cannot hold the exit);
an idle server exits within FORCE_EXIT_SECONDS (Gradio's and anyio's threads are not waited for).
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:
    from studio.service.generation_base import GenerationService

log = logging.getLogger(__name__)

EXIT_WITHIN_SECONDS = 10.0  # SIGTERM to exit, whatever runs: a watchdog then ends the process (os._exit)
GRACE_SECONDS = 7.0  # how long a running job gets to finish its step and save
FORCE_EXIT_SECONDS = 1.5  # the interpreter's own exit (joining library threads) gets this long, then is cut


class Interruptible(Protocol):
    @property
    def busy(self) -> bool: ...
    @property
    def running_here(self) -> bool: ...
    def interrupt(self) -> None: ...


class ServiceJobs:
    """A generation service's jobs as an Interruptible: busy while any job runs or waits; a SIGTERM
    on a thread inside a job (the CLI's) only interrupts it."""

    def __init__(self, generation: "GenerationService") -> None:
        self.generation = generation

    @property
    def busy(self) -> bool:
        return self.generation.has_jobs()

    @property
    def running_here(self) -> bool:
        return self.generation.runs_on_this_thread()

    def interrupt(self) -> None:
        self.generation.stop_all()


def install_shutdown_handler(engine: Interruptible, grace: float = GRACE_SECONDS,
                             on_exit: Callable[[], None] | None = None) -> bool:
    """Handle SIGTERM as above. Only the main thread can install it (elsewhere: no-op, False)."""
    if threading.current_thread() is not threading.main_thread():
        return False

    def handler(signum: int, frame: FrameType | None) -> None:
        log.warning("SIGTERM: stopping after the current step; finished images are kept")
        # the watchdog: nothing below may hold the exit longer (stopping a Ray cluster gets a minute)
        _force_exit_later(EXIT_WITHIN_SECONDS - 0.5 if on_exit is None else 60.0)
        engine.interrupt()
        if engine.running_here:
            return  # the run in this thread returns after this step and saves what is done
        wait_until_idle(engine, grace)
        if on_exit is not None:
            on_exit()
        log.warning("SIGTERM: exiting")
        _force_exit_later(FORCE_EXIT_SECONDS)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, handler)
    return True


def wait_until_idle(engine: Interruptible, timeout: float) -> bool:
    """True once no job runs (False when the timeout passed first)."""
    deadline = time.monotonic() + timeout
    while engine.busy:
        if time.monotonic() > deadline:
            log.error("the running job did not stop within %.0f s; exiting anyway", timeout)
            return False
        time.sleep(0.05)
    return True


def _force_exit_later(seconds: float) -> None:
    timer = threading.Timer(seconds, _exit_now)
    timer.daemon = True
    timer.start()


def _exit_now() -> None:
    log.warning("SIGTERM: exit forced")
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(0)
