"""Short, specific exceptions raised by the core; the UI and the API turn them into messages."""
from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any, Mapping

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_UNSUPPORTED_GLOBAL = re.compile(r"unsupported GLOBAL [\w.]+")


class RequestError(ValueError):
    """A request field is invalid; the message names the field and says what is allowed."""


class UnknownSamplerError(KeyError):
    """A sampler name that is not in the registry; the message lists the ones there are."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class StudioError(RuntimeError):
    """Base for errors whose message is meant for the user."""


class ModelError(StudioError):
    """A model is missing, unreadable or refused; the message says which and why."""


class GenerationInterrupted(StudioError):
    """The user interrupted a run."""


def first_line(error: BaseException) -> str:
    """The first line of a library's message, without terminal colour codes."""
    text = _ANSI.sub("", str(error)).strip().splitlines()
    return text[0] if text else type(error).__name__


def describe_load_error(error: BaseException) -> str:
    """One sentence for a weight-loading failure. A pickle refused by torch's weights-only
    loader says so plainly (torch's own text carries ANSI codes and advice to switch the check off)."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, pickle.UnpicklingError) or "Weights only load failed" in str(cause):
            found = _UNSUPPORTED_GLOBAL.search(str(cause))
            detail = f" ({found.group(0)})" if found else ""
            return f"a pickle file holds more than weights{detail}, so it was not loaded; convert it to .safetensors"
        cause = cause.__cause__ or cause.__context__
    return first_line(error)


# Field checks: each raises a RequestError that names the field and what is allowed.

def check_text(name: str, value: Any, limit: int) -> None:
    check_type(name, value, str)
    if len(value) > limit:
        raise RequestError(f"{name} is {len(value)} characters long; at most {limit} are accepted")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise RequestError(f"{name} contains text that is not valid Unicode (at character {error.start})") from error


def check_type(name: str, value: Any, kind: type) -> None:
    if not isinstance(value, kind):
        raise RequestError(f"{name} must be a {kind.__name__} (got {type(value).__name__})")


def check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{name} must be a whole number (got {value!r})")
    if not low <= value <= high:
        raise RequestError(f"{name} must be between {low} and {high} (got {value})")


def check_number(name: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise RequestError(f"{name} must be a number (got {value!r})")
    if not low <= value <= high:
        raise RequestError(f"{name} must be between {low:g} and {high:g} (got {value:g})")


# -- paths in error texts (issue 22 §20) ------------------------------------------------------------
# Error texts name files relative to their folder, never by the server's absolute path.
#
# A message from the core may carry a path (a model that failed to load, an output folder that
# could not be written, an OSError's filename). Before it leaves the server, each known folder's
# absolute path becomes its short name (`/srv/studio/models/Lora/x.safetensors` → `models/Lora/x.safetensors`)
# and any other absolute path is cut to its last part (`…/x.png`).
ABSOLUTE = re.compile(r"(?<![\w.~/])/(?:[^\s'\"`:,;()<>\[\]{}]+/)+([^\s'\"`:,;()<>\[\]{}/]*)")


def folder_names(folders: Mapping[str, Path]) -> tuple[tuple[str, str], ...]:
    """(absolute prefix, short name) for each folder, as given and resolved, longest first."""
    pairs = set()
    for name, folder in folders.items():
        for form in (Path(folder).absolute(), Path(folder).resolve()):
            pairs.add((str(form).rstrip("/"), name))
    return tuple(sorted(pairs, key=lambda pair: -len(pair[0])))


def relative_paths(message: str, folders: tuple[tuple[str, str], ...]) -> str:
    for prefix, name in folders:
        message = message.replace(prefix + "/", name + "/").replace(prefix, name)
    return ABSOLUTE.sub(lambda found: "…/" + found.group(1), message)
