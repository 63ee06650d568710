"""The command line's `main` called in the test process, for refusals that happen before any work:
`python -m studio` exits with main's return value, so the exit code and stderr are the same, without
a new interpreter paying the torch import (~8 s of CPU) for a check that loads nothing."""
from __future__ import annotations

import signal

import pytest


def refused_in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    from studio.cli.main import main

    handler = signal.getsignal(signal.SIGTERM)  # `generate` installs its own; the test process keeps pytest's
    try:
        code = main(list(args))
    finally:
        signal.signal(signal.SIGTERM, handler)
    return code, capsys.readouterr().err
