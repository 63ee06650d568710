"""Wire the studio together: Settings -> ModelManager -> Engine -> UI -> launch."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from studio import jobs
from studio.engine import Engine, Progress
from studio.errors import StudioError
from studio.hardware import configure_threads
from studio.models import ModelManager
from studio.pnginfo import read_generation_info
from studio.request import GenerationRequest
from studio.samplers import SAMPLERS
from studio.settings import Settings
from studio.ui.build import CSS, HEAD, build_ui
from studio.ui.context import UiContext


@dataclass
class Studio:
    settings: Settings
    models: ModelManager
    engine: Engine

    @classmethod
    def create(cls, settings: Settings) -> "Studio":
        models = ModelManager(settings)
        return cls(settings, models, Engine(models))

    def submit(
        self, request: GenerationRequest, on_step: Callable[[Progress], None] | None = None, save: bool = True
    ) -> jobs.JobResult:
        """The one entry for every generation (UI, API): validate, run, save."""
        return jobs.generate(request, self.engine, self.settings, on_step, save=save)

    def load_model(self, title: str) -> str:
        return self.engine.load_model(title).entry.title

    def settings_summary(self) -> dict[str, Any]:
        s = self.settings
        return {"models_dir": str(s.models_dir), "outputs_dir": str(s.outputs_dir),
                "extensions_dir": str(s.extensions_dir), "device": s.device, "dtype": s.dtype,
                "allow_pickle": s.allow_pickle, "safe_mode": s.safe_mode, "host": s.host, "port": s.port,
                "share": s.share, "auth": "set" if s.auth else "off"}

    def ui_context(self) -> UiContext:
        return UiContext(
            submit=self.submit,
            interrupt=self.engine.interrupt,
            sampler_names=lambda: list(self.engine.samplers),
            model_titles=self.models.titles,
            current_model=lambda: self.models.current().entry.title,
            load_model=self.load_model,
            native_size=lambda: self.models.current().native_size,
            read_png=read_generation_info,
            settings_summary=self.settings_summary,
            error_types=(ValueError, StudioError),
        )


def serve(settings: Settings, block: bool = True) -> Any:
    """Load the model, build the UI, launch Gradio (with the HTTP API beside it unless
    settings.api is off). Returns (studio, demo, app) when block=False."""
    from studio.http import check_exposure, mount_api

    check_exposure(settings)  # before any work: an open API on a public address is refused
    configure_threads()
    studio = Studio.create(settings)
    studio.models.current()  # load before serving: the first click should not wait for it
    demo = build_ui(studio.ui_context())
    demo.queue(default_concurrency_limit=1)
    app, local_url, share_url = demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=settings.share,
        auth=settings.auth,
        inbrowser=settings.open_browser,
        prevent_thread_lock=True,
        allowed_paths=[str(Path(settings.outputs_dir).resolve())],
        head=HEAD,
        css=CSS,
        show_error=True,
        app_kwargs={"docs_url": "/docs"} if settings.api else None,
    )
    if settings.api:
        mount_api(app, studio, settings)
    print(f"Diffusion Studio running on {local_url}" + (f" (share: {share_url})" if share_url else ""), flush=True)
    if block:
        demo.block_thread()
    return studio, demo, app
