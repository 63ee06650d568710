"""Turn core errors into visible messages at the edge of the UI."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import gradio as gr


@contextmanager
def user_errors(error_types: tuple[type[BaseException], ...]) -> Iterator[None]:
    """Known errors become a gr.Error toast with their message; nothing else is swallowed."""
    try:
        yield
    except error_types as error:
        raise gr.Error(str(error), print_exception=False) from error
