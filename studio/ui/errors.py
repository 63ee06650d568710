"""Turn core errors into visible messages at the edge of the UI; files in them are named relative to
their folder (`models/Lora/x.safetensors`), never by the server's absolute path (issue 22 §20)."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

import gradio as gr

from studio.errors import StudioError, folder_names, relative_paths

# What the core raises for the user to read (RequestError is a ValueError); anything else is a bug.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, StudioError)

# Registry of the server folders named in messages (build_ui adds its server's; several servers in one
# process only add short names for more prefixes, which is harmless).
HIDDEN_FOLDERS: set[tuple[str, str]] = set()


def hide_folders(folders: Mapping[str, Path]) -> None:
    HIDDEN_FOLDERS.update(folder_names(folders))


def shown(message: str) -> str:
    """The message as the UI shows it: known folders by their short name, other absolute paths cut."""
    return relative_paths(message, tuple(sorted(HIDDEN_FOLDERS, key=lambda pair: -len(pair[0]))))


@contextmanager
def user_errors(error_types: tuple[type[BaseException], ...] = USER_ERRORS) -> Iterator[None]:
    """Known errors become a gr.Error toast with their message; nothing else is swallowed."""
    try:
        yield
    except error_types as error:
        raise gr.Error(shown(str(error)), print_exception=False) from error


def error_message(error: BaseException) -> str:
    """What to tell the user: a known error's own message; a bug is named by its type (and logged)."""
    if isinstance(error, gr.Error):
        return shown(str(error.message))
    if isinstance(error, USER_ERRORS):
        return shown(str(error))
    logging.getLogger("studio.ui").exception("generation failed")
    return shown(f"{type(error).__name__}: {error}")
