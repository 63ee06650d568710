"""The one module extensions import: a small, versioned API.

An extension's `register(api)` receives an `ExtensionApi`. Everything it adds goes to that
extension's own staging area, which the studio merges only when `register` returns without
raising; names the core (or an extension loaded earlier) already uses are refused.

Versioning: API_VERSION is "MAJOR.MINOR". An extension declaring `api_version = "1"` or
`"1.0"` in its extension.toml loads on any 1.x studio whose minor is at least the declared one;
the major changes only when something here is removed or changes meaning.
See docs/extensions.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Collection, Mapping, Protocol, Sequence, Union

from PIL import Image

from studio.generation.samplers import SamplerSpec
from studio.request import GenerationRequest, RequestError

API_VERSION = "1.1"  # 1.1: on_before_image, add_script(..., api_args=)

__all__ = [
    "API_VERSION", "AfterImageHook", "BeforeGenerateHook", "BeforeImageHook", "ExtensionApi", "ExtensionContext",
    "ExtensionPreprocessor", "GenerationRequest", "RegistrationError", "RequestError", "SamplerSpec",
    "ScriptResult", "ScriptSpec", "TabSpec",
]

# before_generate(request) -> None (unchanged) | new request | (new request, {infotext key: value})
BeforeGenerateHook = Callable[[GenerationRequest], Union[None, GenerationRequest, tuple]]
# before_image(request with the image's seed, index of the image in the run) -> None | new request |
# (new request, {infotext key: value}); only its prompt and negative prompt may differ
BeforeImageHook = Callable[[GenerationRequest, int], Union[None, GenerationRequest, tuple]]
# after_image(image, request) -> None (unchanged) | new image | (new image or None, {infotext key: value})
AfterImageHook = Callable[[Image.Image, GenerationRequest], Union[None, Image.Image, tuple]]
Preprocessor = Callable[..., Image.Image]  # fn(image, **params) -> image


class RegistrationError(ValueError):
    """register() asked for something the studio refuses (a taken name, a wrong type)."""


class JobLike(Protocol):
    request: GenerationRequest
    images: list[Any]  # SavedImage: .image, .path, .infotext, .seed
    interrupted: bool


@dataclass(frozen=True)
class ExtensionPreprocessor:
    fn: Preprocessor
    label: str
    params: Mapping[str, Any]  # parameter defaults, as a UI would offer them
    extension: str


@dataclass(frozen=True)
class ExtensionContext:
    """The narrow view tabs and scripts get: submit generations, read settings, save an image.

    `submit` is the studio's one generation entry (hooks run, images are saved with their
    infotext). `settings` and `samplers` are read-only mappings.
    """

    submit: Callable[[GenerationRequest], JobLike]
    settings: Mapping[str, Any]
    samplers: Mapping[str, SamplerSpec]
    model_titles: Callable[[], list[str]]
    current_model: Callable[[], str]
    load_model: Callable[[str], str]
    save_image: Callable[[Image.Image, str, str, int], Path]  # (image, folder, infotext, seed) -> path
    progress: Callable[[float, str], None] = lambda fraction, desc: None


@dataclass(frozen=True)
class ScriptResult:
    """What a script hands back to show: (image or saved path, caption) pairs and their infotexts."""

    images: list[tuple[Image.Image | Path, str]]
    infotexts: list[str]
    note: str = ""


@dataclass(frozen=True)
class TabSpec:
    title: str
    build: Callable[[ExtensionContext], None]  # builds Gradio components inside the tab
    extension: str


@dataclass(frozen=True)
class ScriptSpec:
    """A tool that runs several generations (A1111's "Script" dropdown).

    `ui()` builds the script's Gradio widgets and returns them by name; `run(ctx, request,
    values)` gets the tab's request and the widgets' values by those names.
    """

    title: str
    ui: Callable[[], Mapping[str, Any]]
    run: Callable[[ExtensionContext, GenerationRequest, Mapping[str, Any]], ScriptResult]
    extension: str
    # A1111's positional `script_args` (HTTP API) -> the values `run` takes; None: not offered there
    api_args: Callable[[Sequence[Any], GenerationRequest], Mapping[str, Any]] | None = None


@dataclass(frozen=True)
class Hook:
    fn: Callable[..., Any]
    extension: str


@dataclass
class Staging:
    """What one extension's register() added; merged into the registries only on success."""

    samplers: dict[str, SamplerSpec] = field(default_factory=dict)
    preprocessors: dict[str, ExtensionPreprocessor] = field(default_factory=dict)
    tabs: list[TabSpec] = field(default_factory=list)
    scripts: list[ScriptSpec] = field(default_factory=list)
    before_generate: list[Hook] = field(default_factory=list)
    before_image: list[Hook] = field(default_factory=list)
    after_image: list[Hook] = field(default_factory=list)


class ExtensionApi:
    """Passed to `register(api)`. Only adds to this extension's staging area."""

    API_VERSION = API_VERSION

    def __init__(
        self,
        name: str,
        directory: Path,
        staging: Staging,
        settings: Mapping[str, Any],
        samplers: Mapping[str, SamplerSpec],
        preprocessors: Mapping[str, ExtensionPreprocessor],
        taken_samplers: Collection[str],
        taken_scripts: Collection[str],
        taken_preprocessors: Collection[str] = (),
    ) -> None:
        self.name = name
        self.directory = directory  # the extension's own folder (for its data files)
        self._staging = staging
        self._settings = settings
        self._samplers = samplers
        self._preprocessors = preprocessors
        self._taken_samplers = {n.lower() for n in taken_samplers}
        self._taken_scripts = {n.lower() for n in taken_scripts}
        self._taken_preprocessors = {n.lower() for n in taken_preprocessors}

    @property
    def settings(self) -> Mapping[str, Any]:
        """Read-only settings (paths, device, flags; never credentials)."""
        return self._settings

    @property
    def samplers(self) -> Mapping[str, SamplerSpec]:
        """Read-only view of the sampler registry as loaded so far."""
        return self._samplers

    @property
    def preprocessors(self) -> Mapping[str, ExtensionPreprocessor]:
        return self._preprocessors

    def add_sampler(self, name: str, spec: SamplerSpec) -> None:
        _check_name("sampler", name)
        if not isinstance(spec, SamplerSpec):
            raise RegistrationError(f"sampler {name!r}: spec must be a studio.api.SamplerSpec")
        for taken in (name, *spec.aliases):
            if taken.lower() in self._taken_samplers:
                raise RegistrationError(f"sampler {taken!r} already exists; extensions cannot replace it")
        self._taken_samplers.update(n.lower() for n in (name, *spec.aliases))
        self._staging.samplers[name] = spec

    def add_preprocessor(
        self, name: str, fn: Preprocessor, *, label: str | None = None, params: Mapping[str, Any] | None = None
    ) -> None:
        """A control-image preprocessor: fn(image: PIL.Image, **params) -> PIL.Image."""
        _check_name("preprocessor", name)
        _check_callable(name, fn)
        if name.lower() in self._taken_preprocessors:
            raise RegistrationError(f"preprocessor {name!r} already exists; extensions cannot replace it")
        self._taken_preprocessors.add(name.lower())
        spec = ExtensionPreprocessor(fn, label or name, MappingProxyType(dict(params or {})), self.name)
        self._staging.preprocessors[name] = spec

    def add_tab(self, title: str, build_fn: Callable[[ExtensionContext], None]) -> None:
        """build_fn(ctx) creates Gradio components; it runs inside the new tab."""
        _check_name("tab", title)
        _check_callable(title, build_fn)
        self._staging.tabs.append(TabSpec(title, build_fn, self.name))

    def add_script(
        self,
        title: str,
        ui: Callable[[], Mapping[str, Any]],
        run: Callable[[ExtensionContext, GenerationRequest, Mapping[str, Any]], ScriptResult],
        api_args: Callable[[Sequence[Any], GenerationRequest], Mapping[str, Any]] | None = None,
    ) -> None:
        """`api_args(script_args, request)` (since 1.1) turns A1111's positional `script_args` of an
        HTTP request into the values `run` takes (raise ValueError naming what is wrong); without it
        the script runs from the UI only."""
        _check_name("script", title)
        _check_callable(title, ui)
        _check_callable(title, run)
        if api_args is not None:
            _check_callable(title, api_args)
        if title.lower() in self._taken_scripts:
            raise RegistrationError(f"script {title!r} already exists")
        self._taken_scripts.add(title.lower())
        self._staging.scripts.append(ScriptSpec(title, ui, run, self.name, api_args))

    def on_before_generate(self, fn: BeforeGenerateHook) -> None:
        """fn(request) runs before every generation; it may return a changed request, optionally
        with extra infotext keys: `return request.replace(prompt=...), {"Key": "value"}`."""
        _check_callable("before_generate hook", fn)
        self._staging.before_generate.append(Hook(fn, self.name))

    def on_before_image(self, fn: BeforeImageHook) -> None:
        """fn(request, index) runs once per image before it is sampled (after the before_generate
        hooks), with `request.seed` the image's own seed and `index` its place in the run; it may
        return the request with another prompt / negative prompt for that image, optionally with
        infotext keys of that image. Since API 1.1."""
        _check_callable("before_image hook", fn)
        self._staging.before_image.append(Hook(fn, self.name))

    def on_after_image(self, fn: AfterImageHook) -> None:
        """fn(image, request) runs on every image before it is saved; it may return a changed
        image, optionally with extra infotext keys: `return image, {"Key": "value"}`."""
        _check_callable("after_image hook", fn)
        self._staging.after_image.append(Hook(fn, self.name))


def _check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str) or not name.strip():
        raise RegistrationError(f"a {kind} needs a non-empty name (got {name!r})")


def _check_callable(name: str, fn: Any) -> None:
    if not callable(fn):
        raise RegistrationError(f"{name}: expected a function, got {type(fn).__name__}")
