"""Composable diffusion (A1111's `AND`): the UNet runs on the unconditional prompt and on every
subprompt, and the prediction the pipeline sees for "the prompt" is

    uncond + sum_i weight_i * (cond_i - uncond)

so that classifier-free guidance then gives A1111's `uncond + cfg * sum_i weight_i * (cond_i - uncond)`
(at CFG 1, without a guidance pass, the same with cfg = 1). The wrapper sits around the UNet for one
pipeline call; the subprompts' embeddings follow their own schedules ([a:b:0.5] in a part works).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch

from studio.prompting.conditioning import Conditioning
from studio.request import RequestError


@contextmanager
def composable(pipe: Any, conditioning: Conditioning | None, batch: int, steps: int) -> Iterator[None]:
    """Within the block, `pipe`'s UNet combines the AND subprompts (nothing happens without them).
    `steps`: the steps this call runs (the schedule is read at the loop's position in them)."""
    if conditioning is None or not conditioning.parts:
        yield
        return
    unet = pipe.unet
    original = unet.forward

    def forward(sample: torch.Tensor, timestep: Any, encoder_hidden_states: torch.Tensor, *args: Any,
                **kwargs: Any) -> Any:
        if kwargs.get("down_block_additional_residuals") is not None:
            raise RequestError("prompts joined by AND cannot be combined with ControlNet units yet")
        step = _step(pipe, timestep, steps)
        guided = sample.shape[0] == 2 * batch
        x = sample[batch:] if guided else sample
        negative = conditioning.negative.at(step)
        parts = [(schedule.at(step), weight) for schedule, weight in conditioning.parts]
        count = 1 + len(parts)
        hidden = torch.cat([negative.tokens.repeat(batch, 1, 1),
                            *(embeds.tokens.repeat(batch, 1, 1) for embeds, _ in parts)]).to(encoder_hidden_states)
        extra = _added_conditions(kwargs, negative, parts, batch, guided)
        output = original(x.repeat(count, 1, 1, 1), _repeat_timestep(timestep, sample.shape[0], batch, count, guided),
                          hidden, *args, **extra)
        noise = output[0] if isinstance(output, tuple) else output.sample
        uncond, *conds = noise.chunk(count)
        combined = uncond + sum(weight * (cond - uncond) for cond, (_, weight) in zip(conds, parts))
        result = torch.cat([uncond, combined]) if guided else combined
        return (result,) if isinstance(output, tuple) else type(output)(sample=result)

    unet.forward = forward
    try:
        yield
    finally:
        unet.forward = original


def _step(pipe: Any, timestep: Any, steps: int) -> int:
    """The prompt schedule's step at this call: the loop's position in the scheduler's timesteps,
    scaled to the steps run (the step callback swaps plain prompts the same way)."""
    timesteps = pipe.scheduler.timesteps
    value = timestep.flatten()[0] if torch.is_tensor(timestep) else torch.tensor(timestep)
    found = (timesteps.to(value.device) == value).nonzero()
    index = int(found[0]) if len(found) else 0
    return index * steps // max(1, len(timesteps))


def _repeat_timestep(timestep: Any, size: int, batch: int, count: int, guided: bool) -> Any:
    if not torch.is_tensor(timestep) or timestep.ndim == 0 or timestep.shape[0] != size:
        return timestep
    own = timestep[batch:] if guided else timestep
    return own.repeat(count)


def _added_conditions(kwargs: dict[str, Any], negative: Any, parts: list, batch: int, guided: bool) -> dict[str, Any]:
    """SDXL's pooled text embeds and time ids, one set per subprompt (the pooled ones are its own)."""
    added = kwargs.get("added_cond_kwargs")
    if not added:
        return kwargs
    time_ids = added["time_ids"]
    own_ids = time_ids[batch:] if guided else time_ids
    pooled = [negative.pooled, *(embeds.pooled for embeds, _ in parts)]
    text_embeds = torch.cat([p.repeat(batch, 1) for p in pooled]).to(added["text_embeds"])
    return {**kwargs, "added_cond_kwargs": {**added, "text_embeds": text_embeds,
                                            "time_ids": own_ids.repeat(len(pooled), 1)}}
