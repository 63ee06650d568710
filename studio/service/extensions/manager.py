"""The extension manager: staged registration, guarded and attributed hook calls, tabs and scripts.

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

import logging
import threading
import traceback
from types import MappingProxyType
from typing import Any, Callable, Collection, Mapping

from PIL import Image

from studio.api import (
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
from studio.request import GenerationRequest
from studio.service.extensions.hooks import (
    GuardedScript,
    GuardedTab,
    checked_after,
    checked_before,
    checked_before_image,
)
from studio.service.extensions.loading import (
    DISABLED,
    FAILED,
    HOOK_TIMEOUT,
    LOAD_TIMEOUT,
    LOADED,
    MAX_FAILURES,
    SAFE_MODE,
    SESSION_DISABLED,
    ExtensionError,
    ExtensionRecord,
    compatibility_problem,
    describe,
    discover,
    import_and_register,
    is_real_interrupt,
    manifest_or_none,
    read_manifest,
    run_with_timeout,
    settings_view,
)
from studio.service.extensions.switches import EnableDisable
from studio.settings import Settings

log = logging.getLogger(__name__)


class ExtensionManager(EnableDisable):
    """Loads extensions once at start and dispatches to them. `samplers` is the merged sampler
    registry (a copy of the core one plus extension samplers); the core registry is never mutated."""

    def __init__(
        self,
        settings: Settings,
        core_samplers: Mapping[str, SamplerSpec] = SAMPLERS,
        core_preprocessors: Collection[str] = tuple(CORE_PREPROCESSORS),
        load_timeout: float = LOAD_TIMEOUT,
        hook_timeout: float = HOOK_TIMEOUT,
    ) -> None:
        self.settings = settings
        self.load_timeout = load_timeout
        self.hook_timeout = hook_timeout  # per hook call: a hanging hook cannot hold a queue slot
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
                record.manifest = manifest_or_none(path)
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
            module = run_with_timeout(lambda: import_and_register(record, api), self.load_timeout, record.folder)
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
        try:  # in its own thread with a time limit; a timeout counts as the extension's failure
            return True, run_with_timeout(lambda: fn(*args), self.hook_timeout, f"{folder} {where}",
                                          f"in {where}: it was stopped (a hook gets {self.hook_timeout:g} s a call)")
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
            ok, out = self._guarded(hook.extension, "before_generate", checked_before, hook.fn, request, notices=notices)
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
                ok, out = self._guarded(hook.extension, "before_image", checked_before_image, hook.fn, image, index,
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
            ok, out = self._guarded(hook.extension, "after_image", checked_after, hook.fn, image, request, notices=notices)
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
            except (ValueError, OverflowError, StudioError):
                # the caller's input (axis values, a number out of range, request fields): a 4xx for
                # the caller, never held against the extension (or three bad requests would disable it)
                raise
            except BaseException as error:
                if is_real_interrupt(error):
                    raise
                raise ExtensionError(self.record_failure(spec.extension, f"script '{spec.title}'", error)) from error
        return run

    # -- views -----------------------------------------------------------------------------

    def rows(self) -> list[dict[str, str]]:
        return [{"folder": r.folder, "name": r.name, "version": r.manifest.version if r.manifest else "",
                 "status": r.status, "description": r.manifest.description if r.manifest else ""}
                for r in self.records.values()]


