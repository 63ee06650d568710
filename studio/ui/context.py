"""What the UI may call: plain callables, so tabs never reach into the engine or diffusers."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Mapping, Protocol, Sequence

from studio.request import ControlUnit, GenerationRequest


class ProgressLike(Protocol):
    step: int
    steps: int
    image: int
    images: int
    eta: float  # seconds left, 0 when unknown


class SavedLike(Protocol):
    path: Path | None
    infotext: str
    seed: int


class JobLike(Protocol):
    request: GenerationRequest
    images: list[Any]
    interrupted: bool
    notices: tuple[str, ...]  # e.g. an extension hook that failed; shown as warnings


class ExtensionTabLike(Protocol):
    title: str
    extension: str
    build: Callable[[], str | None]  # builds inside the current tab; an error text when it failed


class ScriptOutputLike(Protocol):
    images: list[tuple[Any, str]]  # (PIL image or saved path, caption)
    infotexts: list[str]
    note: str


class ScriptLike(Protocol):
    title: str
    extension: str
    build: Callable[[], Mapping[str, Any] | str]  # the script's widgets by name, or an error text
    # run(request, widget values by name, progress(fraction, desc), notify(text)) -> output
    run: Callable[..., ScriptOutputLike]


class PreprocessorLike(Protocol):
    control_type: str  # the ControlNet family it feeds ("any" for "none")
    threshold_a: str | None  # UI label of threshold_a, None when unused
    threshold_b: str | None


class PoseToolsLike(Protocol):
    """The OpenPose body model (studio.control.pose): names, limbs, colours, presets, renderer, JSON."""

    KEYPOINT_NAMES: tuple[str, ...]
    LIMBS: tuple[tuple[int, int], ...]
    COLORS: tuple[tuple[int, int, int], ...]
    PRESETS: Mapping[str, tuple[tuple[float, float], ...]]  # normalised 0..1

    def render_pose(self, keypoints: Sequence[tuple[float, float] | None], width: int, height: int) -> Any: ...
    def pose_to_openpose_json(self, keypoints: Sequence[tuple[float, float] | None], width: int,
                              height: int) -> dict[str, Any]: ...
    def pose_from_openpose_json(self, data: Mapping[str, Any]) -> tuple[list[tuple[float, float] | None], int, int]: ...


def _no_control(unit: ControlUnit, source: Any, width: int, height: int) -> Any:
    raise ValueError("ControlNet is not available")


@dataclass(frozen=True)
class UiContext:
    submit: Callable[[GenerationRequest, Callable[[ProgressLike], None] | None], JobLike]
    interrupt: Callable[[], None]
    sampler_names: Callable[[], list[str]]
    model_titles: Callable[[], list[str]]
    current_model: Callable[[], str]
    load_model: Callable[[str], str]  # returns the loaded title
    native_size: Callable[[], int]
    read_png: Callable[[Path], dict[str, Any]]  # {"infotext": str, "fields": {...}, "chunks": {...}}
    settings_summary: Callable[[], dict[str, Any]]
    error_types: tuple[type[BaseException], ...] = (ValueError,)
    skip: Callable[[], None] = lambda: None  # drop the current iteration of the running job, go on
    # Extensions (studio/service/extensions.py): status rows, enable/disable, their tabs and scripts.
    extension_rows: Callable[[], list[dict[str, str]]] = lambda: []
    extension_refusal: Callable[[], str | None] = lambda: None  # why enable/disable is refused now
    set_extension_enabled: Callable[[str, bool], str] = lambda folder, enabled: "Extensions are not available."
    extension_tabs: Callable[[], list[ExtensionTabLike]] = lambda: []
    scripts: Callable[[], list[ScriptLike]] = lambda: []
    safe_mode: bool = False
    # A1111's "Schedule type" choices (Automatic, Uniform, Karras, ...), the request's `scheduler`.
    schedule_types: Callable[[], list[str]] = lambda: ["Automatic"]
    # ControlNet (studio/control/): the exact control image the engine would use for a unit
    # (unit, source image or None, width, height) -> PIL image; ControlNets of the loaded model as
    # (title, control type); the preprocessor registry as {module: (spec, unavailable reason or None)};
    # the OpenPose tools the pose editor renders with (None: no pose editor).
    preview_control: Callable[[ControlUnit, Any, int, int], Any] = _no_control
    # Live preview: the step's preview image when one is due (settings: every N steps, method), else None.
    live_preview: Callable[[ProgressLike], Any] = lambda progress: None
    controlnet_models: Callable[[], list[tuple[str, str]]] = lambda: []
    control_preprocessors: Callable[[], Mapping[str, tuple[PreprocessorLike, str | None]]] = lambda: {}
    pose_tools: Callable[[], PoseToolsLike | None] = lambda: None
    # Reproduce from a PNG's recipe: warnings before running, then (saved path, infotext, warnings).
    reproduce_warnings: Callable[[Path], list[str]] = lambda path: []
    reproduce: Callable[..., tuple[str | None, str, list[str]]] = lambda path, user=None: (None, "", ["Reproduce is not available."])
    # Prompt styles (studio/prompting/styles.py): names; (prompt, negative, names) -> expanded prompts;
    # (name, prompt, negative) -> the names after saving it.
    style_names: Callable[[], list[str]] = lambda: []
    apply_styles: Callable[[str, str, list[str]], tuple[str, str]] = lambda p, n, names: (p, n)
    save_style: Callable[[str, str, str], list[str]] = lambda name, p, n: []
    # Networks: LoRA names (models/Lora), embeddings that fit the loaded model, VAE choices and the
    # selected VAE (what requests without one use; select returns the canonical name or raises).
    lora_names: Callable[[], list[str]] = lambda: []
    embedding_names: Callable[[], list[str]] = lambda: []
    vae_names: Callable[[], list[str]] = lambda: ["Automatic"]
    selected_vae: Callable[[], str] = lambda: "Automatic"
    select_vae: Callable[[str], str] = lambda name: "Automatic"
    # Upscalers (studio/checkpoints/upscalers.py): every name (hires fix), the pixel ones (Extras), and the Extras
    # run: (images, extras fields by name) -> (saved paths, info text). Face restoration: why it is off.
    upscaler_names: Callable[[], list[str]] = lambda: ["Latent"]
    image_upscaler_names: Callable[[], list[str]] = lambda: ["None"]
    run_extras: Callable[..., tuple[list[str], str]] = lambda images, fields, user=None: ([], "")
    face_restoration_unavailable: Callable[[], str | None] = lambda: "face restoration is not available"
    # Outputs history (studio/records/history.py): (page, per page, search) -> page with .items/.total/.page/.pages;
    # delete one output (a path inside outputs/) -> the files removed.
    history_page: Callable[..., Any] = lambda page, per_page, query, user=None: None  # user: outputs/<user>/
    delete_output: Callable[..., list[Any]] = lambda path, user=None: []
    # Sharing (studio/service/queue.py). enqueue(request, owner, session) -> a place in the queue (raises when
    # it is full), passed to submit(..., job=, user=); queue_text(job): "In queue: position 2 …" while it
    # waits, "" once it runs; interrupt/skip_session(session): stop that browser session's jobs only
    # (every job with --admin-interrupt); the studio is shared when these are set.
    enqueue: Callable[[GenerationRequest, str, str], Any] | None = None
    queue_text: Callable[[Any], str] = lambda job: ""
    interrupt_session: Callable[[str], None] | None = None
    skip_session: Callable[[str], None] | None = None
    close_session: Callable[[str], None] = lambda session: None  # its tab closed: cancel its jobs
    cancel_job: Callable[[Any], None] = lambda job: None  # one place taken with enqueue
    # (owner, session, user) -> a context in which jobs submitted without an owner (scripts) are theirs
    acting_for: Callable[[str, str, str | None], ContextManager[Any]] = lambda owner, session, user: nullcontext()
    # Folder batches (studio/service/batch.py): img2img (request, input dir, output dir, mask dir, progress) and
    # Extras (fields, input dir, output dir, progress) -> a result with .paths/.infotexts/.summary().
    img2img_batch: Callable[..., Any] | None = None
    extras_folder: Callable[..., Any] | None = None
    # submit without showing job notices (a caller on a worker thread shows them itself); None: submit
    submit_quietly: Callable[[GenerationRequest, Callable[[ProgressLike], None] | None], JobLike] | None = None
