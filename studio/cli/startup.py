"""What the process needs before torch is imported: set by the entry points (`python -m studio`,
`app.py`) as their first statement.

OpenMP's worker threads spin-wait for work by default (OMP_WAIT_POLICY=ACTIVE in practice). While
Python imports modules between torch calls, the spinning threads burn CPU for nothing: the CLI's
cold image cost 22.5 s CPU at load 14 and 12.0 s with one thread (issue 26 §4). PASSIVE makes
them sleep instead; torch reads the variable once, when its OpenMP runtime starts, so it has to
be in the environment before `import torch`. A value the user set is kept.
"""
from __future__ import annotations

import os
from typing import MutableMapping

PROCESS_ENVIRONMENT = {"OMP_WAIT_POLICY": "PASSIVE"}


def prepare_environment(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Set the start-up variables the user has not set; returns the ones this call set."""
    added = {name: value for name, value in PROCESS_ENVIRONMENT.items() if not environ.get(name)}
    environ.update(added)
    return added
