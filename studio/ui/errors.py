"""Turn core errors into visible messages at the edge of the UI."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

import gradio as gr

from studio.errors import StudioError

# What the core raises for the user to read (RequestError is a ValueError); anything else is a bug.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, StudioError)


@contextmanager
def user_errors(error_types: tuple[type[BaseException], ...] = USER_ERRORS) -> Iterator[None]:
    """Known errors become a gr.Error toast with their message; nothing else is swallowed."""
    try:
        yield
    except error_types as error:
        raise gr.Error(str(error), print_exception=False) from error


def error_message(error: BaseException) -> str:
    """What to tell the user: a known error's own message; a bug is named by its type (and logged)."""
    if isinstance(error, gr.Error):
        return str(error.message)
    if isinstance(error, USER_ERRORS):
        return str(error)
    logging.getLogger("studio.ui").exception("generation failed")
    return f"{type(error).__name__}: {error}"
