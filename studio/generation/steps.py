"""A run's steps as diffusers reports them: progress for the bar and /progress, the job's stop
events checked once per step, and the prompt schedule's embeddings swapped in when they change."""
from __future__ import annotations

import threading
from typing import Any, Callable

from diffusers import DiffusionPipeline

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
