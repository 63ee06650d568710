"""The services container: what the web routes, the Gradio UI, the CLI and the Ray cluster share.

`build_services(settings)` wires the studio of this machine: one engine on one resident model, the
extensions loaded once, and the services over them; `studio.cluster.services` builds the same
container with the generation, model and Extras services running on Ray Serve replicas.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from studio.settings import Settings

if TYPE_CHECKING:  # the annotations only: importing the container imports no engine (the edges hold one)
    from studio.generation.engine import Engine
    from studio.service.control import ControlService
    from studio.service.extensions.manager import ExtensionManager
    from studio.service.extensions.service import ExtensionService
    from studio.service.extras import ExtrasService
    from studio.service.generation_base import GenerationService
    from studio.service.models import ModelService
    from studio.service.networks import NetworkService
    from studio.service.options import OptionsService
    from studio.service.outputs import OutputService
    from studio.service.styles import StyleService


class ClusterStatus(Protocol):
    def cluster_status(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Services:
    settings: Settings
    generation: GenerationService  # jobs: submit, queue, progress, stop, reproduce
    models: ModelService  # checkpoints, samplers, the loaded model, switching
    networks: NetworkService  # LoRA, embeddings, VAE
    control: ControlService  # ControlNets and preprocessors
    outputs: OutputService  # users' outputs folders, History, PNG Info
    extras: ExtrasService  # upscaling finished images
    styles: StyleService  # styles.csv
    extensions: ExtensionService  # status, switches, tabs, scripts
    cluster: ClusterStatus | None = None  # the replicas behind this studio (Ray Serve only)
    options: OptionsService | None = None  # A1111's options (config.json): /sdapi/v1/options, Settings


def build_services(settings: Settings, engine: Engine | None = None, extensions: ExtensionManager | None = None) -> Services:
    """The studio of this machine (nothing is loaded yet: the model loads on first use). `engine` and
    `extensions`: ones already made to share (tests share one engine on one loaded model)."""
    from studio.checkpoints.manager import ModelManager
    from studio.generation.engine import Engine
    from studio.service.control import ControlService, merged_preprocessors
    from studio.service.extensions.manager import ExtensionManager
    from studio.service.extensions.service import ExtensionService
    from studio.service.extras import ExtrasService
    from studio.service.generation import LocalGeneration
    from studio.service.models import ModelService
    from studio.service.networks import NetworkService
    from studio.service.options import OptionsService
    from studio.service.outputs import OutputService
    from studio.service.styles import StyleService
    from studio.service.zerogpu import GpuEngine, gpu_wrapper

    manager = extensions if extensions is not None else ExtensionManager(settings).load_all()  # --safe-mode: none
    if engine is None:
        engine = Engine(ModelManager(settings), manager.samplers, merged_preprocessors(manager))
    on_gpu = gpu_wrapper()
    styles = StyleService(settings)
    outputs = OutputService(settings, styles)
    generation = LocalGeneration(settings, engine, manager, styles, outputs,
                                 runner=GpuEngine(engine, on_gpu) if on_gpu else None)
    models = ModelService(settings, engine, generation.queue)  # switches and Extras wait in generation's queue
    networks = NetworkService(settings, engine.networks, models)
    options = OptionsService(settings, networks, tuple(models.sampler_names()))
    generation.options = options  # the store lists the models' samplers, and the models wait in generation's queue
    engine.backend_choice = lambda: options.get("backend")  # the Settings page's choice, from the next job
    return Services(
        settings=settings, generation=generation, models=models, networks=networks, options=options,
        control=ControlService(settings, models, engine.preprocessors),
        outputs=outputs, extras=ExtrasService(settings, engine, outputs, generation.queue), styles=styles,
        extensions=ExtensionService(settings, manager, generation, models, outputs.folder),
    )
