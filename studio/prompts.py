"""A1111 prompt syntax for the engine: what to hand the pipeline for a request's two prompts.

    inputs = prepare_prompts(pipe, prompt, negative_prompt, steps, clip_skip)
    pipe(**inputs.pipeline_kwargs(batch), callback_on_step_end=...)  # + inputs.conditioning.at(step)

1. Network tags (`<lora:x:1>`) are split off first (`studio.prompting.networks`); the caller
   applies them, the text encoder never sees them.
2. Prompt editing / alternation turn each prompt into a schedule of texts over the steps
   (`studio.prompting.schedule`).
3. Each distinct text of the schedule is parsed for attention weights and BREAK, cut into
   75-token chunks and encoded once (`studio.prompting.encode`); all entries of both prompts are
   padded to the same number of chunks with the empty prompt's encoding.

Plain prompts (one schedule entry, no weights, no BREAK, one chunk) at clip skip 1 are not encoded
here: they go to the pipeline as `prompt=` text, so they stay on diffusers' own path bit for bit.
(Clip skip > 1 is always encoded here: diffusers 0.42's `clip_skip` looks for `text_model` on
CLIPTextModel, which transformers 5 no longer has.)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from studio.prompting.attention import parse_prompt_attention
from studio.prompting.encode import encode_chunks, max_clip_skip, tokenize_line
from studio.prompting.networks import NetworkTag, split_network_tags
from studio.prompting.schedule import prompt_schedule
from studio.request import RequestError

__all__ = ["Conditioning", "PromptInputs", "PromptSchedule", "prepare_prompts", "split_network_tags", "NetworkTag",
           "parse_prompt_attention", "prompt_schedule"]


@dataclass(frozen=True)
class PromptSchedule:
    """(end_step, embeddings of shape (1, tokens, dim)): at step s the first entry with s <= end_step."""

    entries: tuple[tuple[int, torch.Tensor], ...]

    def at(self, step: int) -> torch.Tensor:
        for end_step, embeds in self.entries:
            if step <= end_step:
                return embeds
        return self.entries[-1][1]


@dataclass(frozen=True)
class Conditioning:
    positive: PromptSchedule
    negative: PromptSchedule

    @property
    def changes(self) -> bool:
        """Whether the embeddings change during sampling (then the step callback swaps them)."""
        return len(self.positive.entries) > 1 or len(self.negative.entries) > 1

    def at(self, step: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(positive, negative) for a batch at a sampling step."""
        return self.positive.at(step).repeat(batch, 1, 1), self.negative.at(step).repeat(batch, 1, 1)


@dataclass(frozen=True)
class PromptInputs:
    prompt: str  # the texts without network tags (what a plain prompt hands the pipeline)
    negative_prompt: str
    networks: tuple[NetworkTag, ...]  # the positive prompt's tags, for whoever applies them
    clip_skip: int
    conditioning: Conditioning | None  # None: plain prompts, diffusers encodes them

    def pipeline_kwargs(self, batch: int) -> dict[str, Any]:
        """The text arguments of a diffusers call for `batch` images (at step 0)."""
        if self.conditioning is None:
            return {"prompt": [self.prompt] * batch, "negative_prompt": [self.negative_prompt] * batch}
        positive, negative = self.conditioning.at(0, batch)
        return {"prompt_embeds": positive, "negative_prompt_embeds": negative}


def prepare_prompts(pipe: Any, prompt: str, negative_prompt: str, steps: int, clip_skip: int = 1) -> PromptInputs:
    """Parse both prompts; encode them here only when they use A1111 syntax or are long."""
    check_clip_skip(pipe, clip_skip)
    prompt, networks = split_network_tags(prompt)
    negative_prompt, _ = split_network_tags(negative_prompt)
    schedules = [prompt_schedule(prompt, steps), prompt_schedule(negative_prompt, steps)]
    plain = [_plain_text(schedule, pipe.tokenizer) for schedule in schedules]
    if plain[0] is not None and plain[1] is not None and clip_skip == 1:
        return PromptInputs(plain[0], plain[1], networks, clip_skip, None)
    conditioning = _encode_schedules(pipe, schedules, clip_skip)
    return PromptInputs(prompt, negative_prompt, networks, clip_skip, conditioning)


def check_clip_skip(pipe: Any, clip_skip: int) -> None:
    layers = max_clip_skip(pipe.text_encoder)
    if clip_skip > layers:
        raise RequestError(f"clip_skip must be at most {layers} for this model (its text encoder has {layers} layers)")


def _plain_text(schedule: list[tuple[int, str]], tokenizer: Any) -> str | None:
    """The text diffusers can encode as is, or None when the prompt needs our encoder."""
    if len(schedule) != 1:
        return None
    parsed = parse_prompt_attention(schedule[0][1])
    if len(parsed) != 1 or parsed[0][1] != 1.0:
        return None  # weighted, or BREAK
    text = parsed[0][0]
    if len(tokenize_line(parsed, tokenizer)) > 1:
        return None  # longer than one chunk: diffusers would truncate it
    return text


def _encode_schedules(pipe: Any, schedules: list[list[tuple[int, str]]], clip_skip: int) -> Conditioning:
    cache: dict[str, list] = {}
    with torch.inference_mode():
        for schedule in schedules:
            for _, text in schedule:
                if text not in cache:
                    chunks = tokenize_line(parse_prompt_attention(text), pipe.tokenizer)
                    cache[text] = encode_chunks(chunks, pipe.text_encoder, clip_skip)
        longest = max(embeds.shape[1] for embeds in cache.values())
        empty = encode_chunks(tokenize_line([("", 1.0)], pipe.tokenizer), pipe.text_encoder, clip_skip)
        padded = {text: _pad(embeds, empty, longest) for text, embeds in cache.items()}
    positive, negative = (PromptSchedule(tuple((end, padded[text]) for end, text in schedule)) for schedule in schedules)
    return Conditioning(positive, negative)


def _pad(embeds: torch.Tensor, empty: torch.Tensor, length: int) -> torch.Tensor:
    """Append empty-prompt chunks up to `length` tokens (A1111's pad_cond_uncond)."""
    missing = (length - embeds.shape[1]) // empty.shape[1]
    return torch.cat([embeds, empty.repeat(1, missing, 1)], dim=1) if missing else embeds
