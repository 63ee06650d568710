"""Stopping, restarting and killing the server from the API (A1111's server-stop/-restart/-kill).

Only the local operator may (the server listens on loopback only, no share link, not a hosted
demo): the edge answers 403 otherwise. Each action runs shortly after the response is sent.
- stop: SIGTERM to this process, so the shutdown handler stops the running job after its step,
  keeps its finished images and exits (studio/service/shutdown.py).
- restart: the same graceful stop of the jobs, then this process is replaced by a fresh one with
  the same command line (A1111 needs its launcher script for this; here `exec` does it).
- kill: exit at once (A1111's stop_program), without waiting for the running job.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Callable

from studio.service.generation_base import GenerationService
from studio.service.shutdown import ServiceJobs, wait_until_idle
from studio.settings import Settings

log = logging.getLogger(__name__)
DELAY_SECONDS = 0.5  # the response leaves before the action
RESTART_GRACE_SECONDS = 30.0


def operator_only_refusal(settings: Settings) -> str | None:
    """Why a caller may not control the server process here, or None."""
    if settings.listens_publicly or settings.hosted_demo:
        return "only the local operator may stop or restart the server (this server is shared)"
    return None


def later(action: Callable[[], None]) -> None:
    timer = threading.Timer(DELAY_SECONDS, action)
    timer.daemon = True
    timer.start()


def stop_server() -> None:
    log.warning("server-stop requested through the API")
    os.kill(os.getpid(), signal.SIGTERM)


def kill_server() -> None:
    log.warning("server-kill requested through the API")
    os._exit(0)


def restart_server(generation: GenerationService) -> None:
    """Stop the jobs (finished images are kept), then exec the same command line."""
    log.warning("server-restart requested through the API")
    generation.stop_all()
    wait_until_idle(ServiceJobs(generation), RESTART_GRACE_SECONDS)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
