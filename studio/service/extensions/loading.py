"""Finding, reading and importing extensions: manifests, API versions, a time limit on import and
register(), and what a failure is called. Extensions are trusted code: this isolates faults, it is
not a sandbox."""
from __future__ import annotations

import ctypes
import importlib.util
import logging
import re
import sys
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, Callable, Mapping

import tomllib

from studio.api import (
    API_VERSION,
    ExtensionApi,
)
from studio.errors import StudioError
from studio.settings import Settings

log = logging.getLogger(__name__)

MANIFEST = "extension.toml"
STATE_FILE = "extensions.json"  # under settings.cache_dir: {"disabled": [folder, ...]}
MAX_FAILURES = 3
SECRET_SETTINGS = frozenset({"auth", "api_auth"})
MODULE_PREFIX = "studio_ext_"
LOAD_TIMEOUT = 30.0  # seconds for import + register() of one extension
HOOK_TIMEOUT = 60.0  # seconds for one hook call (before_generate, before_image, after_image)

LOADED, FAILED, DISABLED, SESSION_DISABLED, PENDING, SAFE_MODE = (
    "loaded", "failed", "disabled", "disabled for this session", "enabled: loads at the next start",
    "not loaded (safe mode)",
)


class ExtensionError(StudioError):
    """An extension could not be loaded or failed while running; the message names it."""


class ExtensionAccessError(StudioError):
    """Enabling/disabling extensions from the UI is refused on a public address."""


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    api_version: str
    description: str = ""


@dataclass
class ExtensionRecord:
    folder: str  # the identity: unique within the extensions folder
    path: Path
    manifest: Manifest | None = None
    state: str = FAILED
    reason: str = ""
    failures: int = 0
    module: ModuleType | None = None  # set once register() succeeded

    @property
    def name(self) -> str:
        return self.manifest.name if self.manifest else self.folder

    @property
    def status(self) -> str:
        return f"{self.state}: {self.reason}" if self.reason else self.state


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST
    if not path.is_file():
        raise ExtensionError(f"no {MANIFEST}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ExtensionError(f"{MANIFEST} is not valid TOML: {error}") from error
    missing = [key for key in ("name", "version", "api_version") if key not in data]
    if missing:
        raise ExtensionError(f"{MANIFEST} lacks {', '.join(missing)}")
    return Manifest(str(data["name"]), str(data["version"]), str(data["api_version"]), str(data.get("description", "")))


def _parse_version(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)(?:\.(\d+))?\s*", text)
    if not match:
        raise ExtensionError(f"api_version {text!r} is not MAJOR or MAJOR.MINOR")
    return int(match.group(1)), int(match.group(2) or 0)


def compatibility_problem(declared: str, provided: str = API_VERSION) -> str | None:
    """None when an extension written for `declared` runs on this studio, else why not."""
    (major, minor), (have_major, have_minor) = _parse_version(declared), _parse_version(provided)
    if major != have_major or minor > have_minor:
        return (f"incompatible api_version {declared!r}: this studio provides extension API {provided}; "
                f"use a version of the extension made for API {have_major}.x (up to {provided})")
    return None


def discover(extensions_dir: Path) -> list[Path]:
    if not extensions_dir.is_dir():
        return []
    return sorted(p for p in extensions_dir.iterdir()
                  if p.is_dir() and not p.name.startswith(("_", ".")) and not p.name.endswith(".disabled"))


def module_name(folder: str) -> str:
    return MODULE_PREFIX + re.sub(r"\W", "_", folder)


def import_extension(path: Path, name: str) -> ModuleType:
    """Import <path>/__init__.py as package `name` (fresh: an earlier module of that name is dropped)."""
    init = path / "__init__.py"
    if not init.is_file():
        raise ExtensionError("no __init__.py")
    for loaded in [m for m in list(sys.modules) if m == name or m.startswith(name + ".")]:
        del sys.modules[loaded]
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(path)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def settings_view(settings: Settings) -> Mapping[str, Any]:
    """Settings for extensions: read-only, without credentials."""
    return MappingProxyType({f.name: getattr(settings, f.name) for f in fields(settings)
                             if f.name not in SECRET_SETTINGS})


def is_real_interrupt(error: BaseException) -> bool:
    """A Ctrl-C (SIGINT raises KeyboardInterrupt in the main thread only): let it through.
    Anything else an extension raises, SystemExit included, is the extension's failure."""
    return isinstance(error, KeyboardInterrupt) and threading.current_thread() is threading.main_thread()


class ExtensionTimeout(BaseException):
    """Raised inside an extension's loading thread once it ran out of time (to stop a Python loop)."""


def run_with_timeout(fn: Callable[[], Any], seconds: float, name: str, what: str = "to load, skipped "
                     "(it loops at import or in register?)") -> Any:
    """fn() in a daemon thread; its result, or its exception re-raised here. On timeout raises
    ExtensionError and asks the thread to stop (works for Python loops; a thread stuck in C code
    stays behind as a daemon and cannot block exit)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as error:  # handed to the caller
            outcome["error"] = error

    worker = threading.Thread(target=target, name=f"load {name}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        _stop_thread(worker)
        raise ExtensionError(f"took > {seconds:g} s {what}")
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, (KeyboardInterrupt, SystemExit)):  # raised by the extension in its own
            # thread: not a Ctrl-C (signals reach the main thread only), so its failure, not the app's end
            raise ExtensionError(describe(error)) from error
        raise error
    return outcome.get("value")


def _stop_thread(thread: threading.Thread) -> None:
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(ExtensionTimeout))


def describe(error: BaseException) -> str:
    """One line: our own errors by their message, anything else with its type."""
    text = str(error).strip().splitlines()
    if isinstance(error, ExtensionError) and text:
        return text[0]
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def import_and_register(record: ExtensionRecord, api: ExtensionApi) -> ModuleType:
    name = module_name(record.folder)
    module = import_extension(record.path, name)
    register = getattr(module, "register", None)
    if not callable(register):
        raise ExtensionError("__init__.py has no register(api) function")
    try:
        register(api)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def manifest_or_none(path: Path) -> Manifest | None:
    try:
        return read_manifest(path)
    except ExtensionError:
        return None


