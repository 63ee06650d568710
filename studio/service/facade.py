"""The narrow interface the web layer (HTTP routes, later a Ray Serve handle) uses to reach the studio.

Routes depend on this Protocol, never on the Studio class, the engine or diffusers objects: a local
`studio.service.studio.Studio` implements it today; a remote replica handle can implement it tomorrow.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence

from PIL import Image

from studio.request import GenerationRequest
from studio.settings import Settings

if TYPE_CHECKING:
    from studio.checkpoints.catalog import ModelEntry
    from studio.checkpoints.upscalers import UpscalerEntry
    from studio.control.models import ControlNetEntry
    from studio.control.preprocessors import PreprocessorSpec
    from studio.generation.engine import Progress
    from studio.generation.samplers import SamplerSpec
    from studio.service.jobs import JobResult, SavedImage
    from studio.service.queue import Job, JobQueue
    from studio.service.scripts import ScriptJob


@dataclass(frozen=True)
class LoadedInfo:
    """What the web layer may know about the resident model (no pipeline objects)."""

    entry: "ModelEntry"
    hash: str
    vae_scale_factor: int


@dataclass(frozen=True)
class Reproduction:
    image: "SavedImage"  # the regenerated image, with its infotext and recipe
    request: GenerationRequest  # what was run (the image's whole batch)
    warnings: list[str]


class StudioFacade(Protocol):
    settings: Settings
    parallel_jobs: int  # jobs that run at once: 1 on the local engine, the replicas on a cluster

    queue: "JobQueue"  # who waits and who runs (studio.service.queue): places, ETAs, per-job stop events

    def submit(self, request: GenerationRequest, on_step: Callable[["Progress"], None] | None = None,
               save: bool = True, directory: Path | None = None, owner: str | None = None,
               user: str | None = None) -> "JobResult": ...  # queued under `owner`; outputs/<user>/ with several users

    def caller_job(self, owner: str) -> "Job | None": ...  # the owner's running (else first queued) job

    def samplers(self) -> Mapping[str, "SamplerSpec"]: ...

    def sampler_reasons(self) -> Mapping[str, str | None]: ...  # why each sampler can't run on the loaded model

    def model_entries(self) -> list["ModelEntry"]: ...

    def loaded_info(self) -> LoadedInfo | None: ...

    def load_model(self, title: str) -> str: ...

    def controlnet_entries(self, model_title: str | None) -> list["ControlNetEntry"]: ...

    def controlnet_fit(self) -> Mapping[str, str | None]: ...  # title -> why it does not fit the loaded model

    def preprocessors(self) -> Mapping[str, "PreprocessorSpec"]: ...

    def busy(self) -> bool: ...

    def progress(self) -> "Progress": ...

    def interrupt(self, owner: str | None = None) -> None: ...  # the owner's jobs; None: the running job

    def prompt_styles(self) -> Mapping[str, Any]: ...  # styles.csv by name (studio.prompting.styles.Style)

    def skip(self, owner: str | None = None) -> None: ...  # drop the current iteration of the owner's running job

    def run_script(self, request: GenerationRequest, script_name: str, script_args: Sequence[Any] = (),
                   owner: str | None = None, user: str | None = None) -> "ScriptJob": ...  # A1111's script_name / script_args

    def preview(self, method: str, job: "Job | None" = None) -> Image.Image | None: ...

    def reproduce_image(self, source: Path | Image.Image, save: bool = False) -> Reproduction: ...

    # Networks (studio.networks): listings in A1111's shapes and the VAE of requests that name none.
    def lora_items(self) -> list[dict[str, Any]]: ...

    def embedding_items(self) -> dict[str, dict[str, Any]]: ...

    def vae_items(self) -> list[dict[str, str]]: ...

    def vae_names(self) -> list[str]: ...

    def selected_vae(self) -> str: ...

    def select_vae(self, name: str) -> str: ...

    def upscalers(self) -> Mapping[str, "UpscalerEntry"]: ...

    def run_extras(self, images: list[Image.Image], values: Mapping[str, Any],
                   save: bool = True) -> tuple[list[Any], str]: ...
