"""A run's steps as diffusers reports them: progress for the bar and /progress, the job's stop
events checked once per step, and the prompt schedule's embeddings swapped in when they change."""
from __future__ import annotations

import threading
from typing import Any, Callable

from diffusers import DiffusionPipeline

from studio.generation import denoised
from studio.generation.results import Progress, StepCallback
from studio.prompting.conditioning import PromptInputs


class Steps:
    """One run's progress and stop events; `callback(...)` makes a pass's `callback_on_step_end`."""

    def __init__(self, progress: Progress, interrupt: threading.Event, skip: threading.Event,
                 on_step: StepCallback | None) -> None:
        self.progress = progress
        self.interrupt = interrupt
        self.skip = skip
        self.on_step = on_step
        self._denoised: Any = None  # x̂0 of the step that just ran (studio/generation/denoised.py)

    def watch(self, scheduler: Any) -> Any:
        """Have `scheduler` report each step's x̂0 (for previews and the image an Interrupt keeps)."""
        return denoised.watch(scheduler, self._keep_denoised)

    def _keep_denoised(self, x0: Any) -> None:
        self._denoised = x0

    @property
    def stopped(self) -> bool:
        """Interrupt (stop the run) or Skip (drop this iteration) was asked for."""
        return self.interrupt.is_set() or self.skip.is_set()

    def callback(self, prompts: PromptInputs | None = None, batch: int = 1, steps: int = 0,
                 offset: int = 0) -> Callable[..., dict[str, Any]]:
        """`prompts`: a schedule to swap embeddings from; `offset`: steps of the passes before this one."""
        progress = self.progress

        def callback(pipe: DiffusionPipeline, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            progress.step = offset + step + 1
            progress.latents = tensors.get("latents")
            self.watch(pipe.scheduler)  # a pass that did not ask yet: from its next step on
            progress.denoised, self._denoised = self._denoised, None
            if self.stopped:
                pipe._interrupt = True  # diffusers skips the remaining steps
            if self.on_step is not None:
                self.on_step(progress)
            if prompts is None or prompts.conditioning is None:
                return {}
            # Second-order samplers run about two loop iterations per step: the step comes from the loop's progress.
            next_step = (step + 1) * steps // pipe.num_timesteps
            return prompts.conditioning.loop_tensors(next_step, batch, pipe.do_classifier_free_guidance)

        return callback
