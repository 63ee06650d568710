"""Extensions: discovery, staged registration, guarded and attributed hook calls, enable/disable.

    extensions/<folder>/extension.toml   name, version, api_version, description
    extensions/<folder>/__init__.py      def register(api): ...

Folders starting with "_" or "." or ending in ".disabled" are skipped. Each extension imports
under its own module name (`studio_ext_<folder>`), only after its api_version was found
compatible; its `install.py`, if any, is never run. `register()` fills a staging area that is
merged only when it returns; names already taken (core samplers first) are refused. Every call
into extension code goes through `_guarded`, which attributes failures to their extension; an
extension that fails MAX_FAILURES times is disabled for the session with a notice. Import and
register() run in a daemon thread with a time limit: an extension that loops at import is
reported and skipped, and start-up goes on. BaseException is caught too (SystemExit from an
extension does not stop the app); only a KeyboardInterrupt in the main thread (a real Ctrl-C)
goes through.
Extensions are trusted code: this isolates faults, it is not a sandbox.
"""
from __future__ import annotations

import ctypes
import datetime
import importlib.util
import json
import logging
import os
import re
import sys
import threading
import traceback
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, Callable, Collection, Mapping

import tomllib
from PIL import Image

from studio.api import (
    API_VERSION,
    ExtensionApi,
    ExtensionContext,
    ExtensionPreprocessor,
    Hook,
    ScriptResult,
    ScriptSpec,
    Staging,
    TabSpec,
)
from studio.control.preprocessors import PREPROCESSORS as CORE_PREPROCESSORS
from studio.errors import StudioError
from studio.generation.samplers import SAMPLERS, SamplerSpec
from studio.records import storage
from studio.request import GenerationRequest
from studio.settings import Settings

log = logging.getLogger(__name__)

MANIFEST = "extension.toml"
STATE_FILE = "extensions.json"  # under settings.cache_dir: {"disabled": [folder, ...]}
MAX_FAILURES = 3
SECRET_SETTINGS = frozenset({"auth", "api_auth"})
MODULE_PREFIX = "studio_ext_"
LOAD_TIMEOUT = 30.0  # seconds for import + register() of one extension

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


@dataclass(frozen=True)
class GuardedTab:
    """An extension tab for the UI: `build()` runs inside the tab, returns an error text or None."""

    title: str
    extension: str
    build: Callable[[], str | None]


@dataclass(frozen=True)
class GuardedScript:
    """A script for the UI: `build()` returns its widgets by name (or an error text); `run` raises
    ExtensionError (attributed) or the script's own ValueError for bad input."""

    title: str
    extension: str
    build: Callable[[], Mapping[str, Any] | str]
    run: Callable[..., ScriptResult]


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


def save_output(outputs_dir: Path, image: Image.Image, folder: str, infotext: str, seed: int) -> Path:
    """Save an extension's image (e.g. a grid) as outputs/<folder>/<date>/NNNNN-<seed>.png."""
    if not re.fullmatch(r"[\w-]+", folder):
        raise ValueError(f"output folder must be a plain name such as 'txt2img-grids' (got {folder!r})")
    return storage.save_png(image, outputs_dir / folder / datetime.date.today().isoformat(), seed, infotext)


def is_real_interrupt(error: BaseException) -> bool:
    """A Ctrl-C (SIGINT raises KeyboardInterrupt in the main thread only): let it through.
    Anything else an extension raises, SystemExit included, is the extension's failure."""
    return isinstance(error, KeyboardInterrupt) and threading.current_thread() is threading.main_thread()


class ExtensionTimeout(BaseException):
    """Raised inside an extension's loading thread once it ran out of time (to stop a Python loop)."""


def run_with_timeout(fn: Callable[[], Any], seconds: float, name: str) -> Any:
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
        raise ExtensionError(f"took > {seconds:g} s to load, skipped (it loops at import or in register?)")
    if "error" in outcome:
        raise outcome["error"]
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


class ExtensionManager:
    """Loads extensions once at start and dispatches to them. `samplers` is the merged sampler
    registry (a copy of the core one plus extension samplers); the core registry is never mutated."""

    def __init__(
        self,
        settings: Settings,
        core_samplers: Mapping[str, SamplerSpec] = SAMPLERS,
        core_preprocessors: Collection[str] = tuple(CORE_PREPROCESSORS),
        load_timeout: float = LOAD_TIMEOUT,
    ) -> None:
        self.settings = settings
        self.load_timeout = load_timeout
        self.samplers: dict[str, SamplerSpec] = dict(core_samplers)
        # Extension preprocessors only (fn(image, **params) -> image); core names are reserved.
        self.preprocessors: dict[str, ExtensionPreprocessor] = {}
        self.core_preprocessors = frozenset(core_preprocessors)
        self.tabs: list[TabSpec] = []
        self.scripts: list[ScriptSpec] = []
        self.before_hooks: list[Hook] = []
        self.image_hooks: list[Hook] = []  # before_image
        self.after_hooks: list[Hook] = []
        self.records: dict[str, ExtensionRecord] = {}
        self._lock = threading.RLock()

    # -- loading ---------------------------------------------------------------------------

    def load_all(self) -> "ExtensionManager":
        disabled = self.disabled_folders()
        for path in discover(self.settings.extensions_dir):
            record = self.records[path.name] = ExtensionRecord(path.name, path)
            if self.settings.safe_mode or path.name in disabled:
                record.state = SAFE_MODE if self.settings.safe_mode else DISABLED
                record.manifest = _manifest_or_none(path)
                continue
            self._load(record)
        return self

    def _load(self, record: ExtensionRecord) -> None:
        try:
            record.manifest = read_manifest(record.path)
            problem = compatibility_problem(record.manifest.api_version)
            if problem:
                raise ExtensionError(problem)
            staging = Staging()
            api = self._api_for(record, staging)
            module = run_with_timeout(lambda: _import_and_register(record, api), self.load_timeout, record.folder)
        except BaseException as error:  # a broken extension never stops start-up
            if is_real_interrupt(error):
                raise
            record.state, record.reason = FAILED, describe(error)
            if not isinstance(error, ExtensionError):
                log.error("extension %r failed to load:\n%s", record.folder, traceback.format_exc())
            else:
                log.warning("extension %r not loaded: %s", record.folder, error)
            return
        self._merge(staging)
        record.state, record.module = LOADED, module
        if (record.path / "install.py").exists():
            record.reason = "its install.py was not run (the studio never runs it): install what it needs yourself"

    def _api_for(self, record: ExtensionRecord, staging: Staging) -> ExtensionApi:
        taken = [*self.samplers, *(alias for spec in self.samplers.values() for alias in spec.aliases)]
        return ExtensionApi(
            name=record.folder, directory=record.path, staging=staging, settings=settings_view(self.settings),
            samplers=MappingProxyType(self.samplers), preprocessors=MappingProxyType(self.preprocessors),
            taken_samplers=taken, taken_scripts=[script.title for script in self.scripts],
            taken_preprocessors=[*self.core_preprocessors, *self.preprocessors],
        )

    def _merge(self, staging: Staging) -> None:
        self.samplers.update(staging.samplers)
        self.preprocessors.update(staging.preprocessors)
        self.tabs += staging.tabs
        self.scripts += staging.scripts
        self.before_hooks += staging.before_generate
        self.image_hooks += staging.before_image
        self.after_hooks += staging.after_image

    # -- guarded calls ---------------------------------------------------------------------

    def is_active(self, folder: str) -> bool:
        record = self.records.get(folder)
        return record is not None and record.state == LOADED

    def _guarded(self, folder: str, where: str, fn: Callable[..., Any], *args: Any,
                 notices: list[str] | None = None) -> tuple[bool, Any]:
        """(True, result), or (False, None) when the extension is inactive or raised."""
        if not self.is_active(folder):
            return False, None
        try:
            return True, fn(*args)
        except BaseException as error:  # SystemExit from a hook must not end the app
            if is_real_interrupt(error):
                raise
            self.record_failure(folder, where, error, notices)
            return False, None

    def record_failure(self, folder: str, where: str, error: BaseException, notices: list[str] | None = None) -> str:
        """Count a failure against an extension; the returned notice names it and what happened."""
        log.error("extension %r failed in %s:\n%s", folder, where,
                  "".join(traceback.format_exception(type(error), error, error.__traceback__)))
        with self._lock:
            record = self.records[folder]
            record.failures += 1
            notice = f"Extension '{record.name}' failed in {where} ({record.failures}/{MAX_FAILURES}): {describe(error)}"
            if record.state == LOADED:
                record.reason = f"failed {record.failures} time(s), last in {where}: {describe(error)}"
            if record.failures >= MAX_FAILURES and record.state == LOADED:
                record.state = SESSION_DISABLED
                notice += f" — '{record.name}' is disabled for this session."
        if notices is not None:
            notices.append(notice)
        return notice

    def before_generate(self, request: GenerationRequest, notices: list[str]) -> tuple[GenerationRequest, dict[str, Any]]:
        """Run every before_generate hook in load order; a failing hook leaves the request as it was."""
        params: dict[str, Any] = {}
        for hook in list(self.before_hooks):
            ok, out = self._guarded(hook.extension, "before_generate", _checked_before, hook.fn, request, notices=notices)
            if ok and out is not None:
                request, extra = out
                params.update(extra)
        return request, params

    def image_prompts(self, request: GenerationRequest,
                      notices: list[str]) -> Callable[[int], tuple[str, str, dict[str, Any]]]:
        """Image index -> (prompt, negative prompt, infotext keys) from the before_image hooks; a
        failing hook leaves that image's prompt as it was."""
        def prompts(index: int) -> tuple[str, str, dict[str, Any]]:
            image = request.replace(seed=request.seed + index)
            params: dict[str, Any] = {}
            for hook in list(self.image_hooks):
                ok, out = self._guarded(hook.extension, "before_image", _checked_before_image, hook.fn, image, index,
                                        notices=notices)
                if ok and out is not None:
                    image, extra = out
                    params.update(extra)
            return image.prompt, image.negative_prompt, params

        return prompts

    def after_image(self, image: Image.Image, request: GenerationRequest,
                    notices: list[str]) -> tuple[Image.Image, dict[str, Any]]:
        params: dict[str, Any] = {}
        for hook in list(self.after_hooks):
            ok, out = self._guarded(hook.extension, "after_image", _checked_after, hook.fn, image, request, notices=notices)
            if ok and out is not None:
                image, extra = out
                params.update(extra)
        return image, params

    def run_preprocessor(self, name: str, image: Image.Image, **params: Any) -> Image.Image:
        """For the ControlNet work: run a registered preprocessor, attributing failures."""
        spec = self.preprocessors[name]
        if not self.is_active(spec.extension):
            raise ExtensionError(f"preprocessor {name!r}: extension '{spec.extension}' is {self.records[spec.extension].status}")
        try:
            result = spec.fn(image, **params)
            if not isinstance(result, Image.Image):
                raise TypeError(f"returned {type(result).__name__}, expected a PIL image")
            return result
        except BaseException as error:
            if is_real_interrupt(error):
                raise
            raise ExtensionError(self.record_failure(spec.extension, f"preprocessor {name!r}", error)) from error

    def guarded_tabs(self, context: ExtensionContext) -> list[GuardedTab]:
        def builder(tab: TabSpec) -> Callable[[], str | None]:
            def build() -> str | None:
                try:
                    tab.build(context)
                    return None
                except BaseException as error:
                    if is_real_interrupt(error):
                        raise
                    return self.record_failure(tab.extension, f"tab '{tab.title}'", error)
            return build

        return [GuardedTab(tab.title, tab.extension, builder(tab)) for tab in self.tabs if self.is_active(tab.extension)]

    def guarded_scripts(self, context_for: Callable[..., ExtensionContext]) -> list[GuardedScript]:
        """`context_for(progress, notify)` gives the context of one script run."""
        return [GuardedScript(spec.title, spec.extension, self._script_builder(spec), self._script_runner(spec, context_for))
                for spec in self.scripts if self.is_active(spec.extension)]

    def script_for_api(self, name: str, context_for: Callable[..., ExtensionContext]) -> tuple[GuardedScript, ScriptSpec]:
        """The active script titled `name` (case-insensitive) with its spec; ExtensionError when
        there is none or it takes no A1111 `script_args`."""
        for spec in self.scripts:
            if spec.title.lower() == name.strip().lower() and self.is_active(spec.extension):
                if spec.api_args is None:
                    raise ExtensionError(f"script {spec.title!r} cannot run from the API (it takes no script_args)")
                return (GuardedScript(spec.title, spec.extension, self._script_builder(spec),
                                      self._script_runner(spec, context_for)), spec)
        titles = [spec.title for spec in self.scripts if self.is_active(spec.extension)]
        raise ExtensionError(f"no script named {name!r}; available: {', '.join(titles) or 'none'}")

    def _script_builder(self, spec: ScriptSpec) -> Callable[[], Mapping[str, Any] | str]:
        def build() -> Mapping[str, Any] | str:
            try:
                widgets = spec.ui()
                if not isinstance(widgets, Mapping):
                    raise TypeError(f"ui() returned {type(widgets).__name__}, expected a dict of widgets")
                return widgets
            except BaseException as error:
                if is_real_interrupt(error):
                    raise
                return self.record_failure(spec.extension, f"script '{spec.title}' ui", error)
        return build

    def _script_runner(self, spec: ScriptSpec, context_for: Callable[..., ExtensionContext]) -> Callable[..., ScriptResult]:
        def run(request: GenerationRequest, values: Mapping[str, Any],
                progress: Callable[[float, str], None] = lambda f, d: None,
                notify: Callable[[str], None] = lambda text: None) -> ScriptResult:
            record = self.records[spec.extension]
            if record.state != LOADED:
                raise ExtensionError(f"script '{spec.title}': extension '{record.name}' is {record.status}")
            try:
                result = spec.run(context_for(progress, notify), request, values)
                if not isinstance(result, ScriptResult):
                    raise TypeError(f"run() returned {type(result).__name__}, expected a ScriptResult")
                return result
            except (ValueError, StudioError):
                raise  # the user's input (axis values, request fields): shown, not held against the extension
            except BaseException as error:
                if is_real_interrupt(error):
                    raise
                raise ExtensionError(self.record_failure(spec.extension, f"script '{spec.title}'", error)) from error
        return run

    # -- enable / disable ------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.settings.cache_dir / STATE_FILE

    def disabled_folders(self) -> set[str]:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
            return {str(name) for name in data.get("disabled", [])}
        except FileNotFoundError:
            return set()
        except (OSError, ValueError, AttributeError) as error:
            log.warning("ignoring unreadable %s: %s", self.state_path, error)
            return set()

    def change_refusal(self) -> str | None:
        """Why the UI may not enable/disable extensions now, or None when it may."""
        s = self.settings
        if s.hosted_demo:
            return "Extensions are locked on a hosted demo: they are code that runs on this server."
        if not s.listens_publicly or s.enable_insecure_extension_access:
            return None
        where = "a public share link" if s.share else f"{s.host}, reachable from the network"
        return (f"Enabling or disabling extensions from the UI is refused: the app listens on {where}. "
                f"Restart with --enable-insecure-extension-access to allow it, or edit {self.state_path} and restart.")

    def set_enabled(self, folder: str, enabled: bool) -> str:
        """Persist the choice; returns what happened, in words. Raises ExtensionAccessError when refused."""
        refusal = self.change_refusal()
        if refusal:
            raise ExtensionAccessError(refusal)
        with self._lock:
            record = self.records.get(folder)
            if record is None:
                raise ExtensionError(f"no extension folder {folder!r} in {self.settings.extensions_dir}")
            disabled = self.disabled_folders()
            disabled = disabled - {folder} if enabled else disabled | {folder}
            self._write_state(disabled)
            return self._enable(record) if enabled else self._disable(record)

    def _enable(self, record: ExtensionRecord) -> str:
        if record.module is not None:  # registered this session: its hooks can resume right away
            record.state, record.reason, record.failures = LOADED, "", 0
            return f"Enabled '{record.name}'."
        if record.state == DISABLED:
            record.state, record.reason = PENDING, ""
            return f"Enabled '{record.name}': it loads at the next start."
        return f"Enabled '{record.name}'; it is not loaded now ({record.status})."

    def _disable(self, record: ExtensionRecord) -> str:
        was_loaded = record.module is not None and record.state in (LOADED, SESSION_DISABLED)
        record.state, record.reason = DISABLED, ""
        if was_loaded:
            return (f"Disabled '{record.name}': its hooks and scripts stop now; "
                    "its tabs and samplers go away at the next start.")
        return f"Disabled '{record.name}'."

    def _write_state(self, disabled: set[str]) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"disabled": sorted(disabled)}, indent=2), encoding="utf-8")
        os.replace(tmp, self.state_path)

    # -- views -----------------------------------------------------------------------------

    def rows(self) -> list[dict[str, str]]:
        return [{"folder": r.folder, "name": r.name, "version": r.manifest.version if r.manifest else "",
                 "status": r.status, "description": r.manifest.description if r.manifest else ""}
                for r in self.records.values()]


def _import_and_register(record: ExtensionRecord, api: ExtensionApi) -> ModuleType:
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


def _manifest_or_none(path: Path) -> Manifest | None:
    try:
        return read_manifest(path)
    except ExtensionError:
        return None


def _checked_before(fn: Callable[..., Any], request: GenerationRequest) -> tuple[GenerationRequest, dict[str, Any]] | None:
    out = fn(request)
    if out is None:
        return None
    new, extra = out if isinstance(out, tuple) and len(out) == 2 else (out, {})
    if not isinstance(new, GenerationRequest):
        raise TypeError(f"before_generate returned {type(new).__name__}; expected a GenerationRequest, "
                        "(request, {infotext key: value}) or None")
    return new.validate(), _params(extra)


def _checked_before_image(fn: Callable[..., Any], request: GenerationRequest,
                          index: int) -> tuple[GenerationRequest, dict[str, Any]] | None:
    out = _checked_before(lambda r: fn(r, index), request)
    if out is not None:
        new = out[0]
        if new.replace(prompt=request.prompt, negative_prompt=request.negative_prompt) != request:
            raise ValueError("before_image may change only the prompt and the negative prompt")
    return out


def _checked_after(fn: Callable[..., Any], image: Image.Image,
                   request: GenerationRequest) -> tuple[Image.Image, dict[str, Any]] | None:
    out = fn(image, request)
    if out is None:
        return None
    new, extra = out if isinstance(out, tuple) and len(out) == 2 else (out, {})
    new = image if new is None else new
    if not isinstance(new, Image.Image):
        raise TypeError(f"after_image returned {type(new).__name__}; expected a PIL image, "
                        "(image or None, {infotext key: value}) or None")
    return new, _params(extra)


def _params(extra: Any) -> dict[str, Any]:
    if not isinstance(extra, Mapping):
        raise TypeError(f"infotext keys must come as a dict (got {type(extra).__name__})")
    return {str(key): value for key, value in extra.items()}
