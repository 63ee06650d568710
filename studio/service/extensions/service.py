"""Extensions as the edges see them: their status rows and switches, their tabs and scripts (guarded
and attributed), the narrow context they get, and running a script by name from the API."""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

from studio.api import ExtensionContext
from studio.request import GenerationRequest
from studio.service.extensions.hooks import GuardedScript, GuardedTab, save_into, save_output
from studio.service.extensions.loading import settings_view
from studio.service.extensions.manager import ExtensionManager
from studio.service.extensions.scripts import ScriptJob, run_script
from studio.service.generation_base import GenerationService
from studio.service.models import ModelService
from studio.service.queue import LOCAL
from studio.service.results import JobResult
from studio.settings import Settings

Progress = Callable[[float, str], None]


class ExtensionService:
    def __init__(self, settings: Settings, manager: ExtensionManager, generation: GenerationService,
                 models: ModelService, outputs_folder: Callable[[str | None], Path] | None = None) -> None:
        self.outputs_folder = outputs_folder  # a user's outputs folder (OutputService.folder)
        self.settings = settings
        self.manager = manager
        self.generation = generation
        self.models = models

    @property
    def safe_mode(self) -> bool:
        return self.settings.safe_mode

    def rows(self) -> list[dict[str, str]]:
        return self.manager.rows()

    def change_refusal(self) -> str | None:
        """Why enabling/disabling is refused now (a public address, a hosted demo), or None."""
        return self.manager.change_refusal()

    def set_enabled(self, folder: str, enabled: bool) -> str:
        return self.manager.set_enabled(folder, enabled)

    def context(self, progress: Progress = lambda f, d: None,
                notify: Callable[[str], None] = lambda t: None, directory: Path | None = None) -> ExtensionContext:
        """The narrow context extension tabs and scripts get; hook notices go to `notify`. `directory`:
        every image of the run (and the script's own, e.g. a grid) is saved there (the CLI's --out)."""
        def submit(request: GenerationRequest) -> JobResult:
            job = self.generation.submit(request, directory=directory)
            for notice in job.notices:
                notify(notice)
            return job

        return ExtensionContext(
            submit=submit, settings=settings_view(self.settings), samplers=self.models.samplers(),
            model_titles=self.models.titles, current_model=self.models.current_title, load_model=self.models.load,
            save_image=self._save_image if directory is None else partial(save_into, directory),
            progress=progress,
        )

    def _save_image(self, image: Any, folder: str, infotext: str, seed: int) -> Any:
        """A script's own image (an X/Y/Z grid, a prompt matrix) goes to the outputs of whom the script
        runs for (outputs/<user>/<folder>/ with several users), where its owner may fetch it."""
        root = self.outputs_folder(self.generation.acting_user()) if self.outputs_folder else self.settings.outputs_dir
        return save_output(root, image, folder, infotext, seed)

    def tabs(self) -> list[GuardedTab]:
        return self.manager.guarded_tabs(self.context())

    def scripts(self) -> list[GuardedScript]:
        return self.manager.guarded_scripts(self.context)

    def api_script_titles(self) -> list[str]:
        """The active scripts a client may name as `script_name` (they take A1111's script_args)."""
        return [spec.title for spec in self.manager.scripts
                if self.manager.is_active(spec.extension) and spec.api_args is not None]

    def run_script(self, request: GenerationRequest, script_name: str, script_args: Sequence[Any] = (),
                   owner: str | None = None, user: str | None = None, directory: Path | None = None) -> ScriptJob:
        """Run an extension's script by name with A1111's positional script_args (ScriptRequestError: 4xx);
        its jobs are queued under `owner` and saved in the user's outputs."""
        with self.generation.acting_for(owner or LOCAL, None, user):
            context = self.context if directory is None else partial(self.context, directory=directory)
            return run_script(self.manager, context, request, script_name, script_args,
                              interrupted=self.generation.interrupt_pending)
