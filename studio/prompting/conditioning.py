"""A1111 prompt syntax for the engine: what to hand the pipeline for a request's two prompts.

    inputs = prepare_prompts(pipe, prompt, negative_prompt, steps, clip_skip)
    pipe(**inputs.pipeline_kwargs(batch), callback_on_step_end=...)  # + inputs.conditioning.at(step)

1. Network tags (`<lora:x:1>`) are split off first (`studio.prompting.networks`); the caller
   applies them, the text encoder never sees them.
2. Prompt editing / alternation turn each prompt into a schedule of texts over the steps
   (`studio.prompting.schedule`), within the limits of `studio.prompting.limits`.
3. Each distinct text of the schedule is parsed for attention weights and BREAK, cut into
   75-token chunks and encoded once (`studio.prompting.encode`); all entries of both prompts are
   padded to the same number of chunks with the empty prompt's encoding.

Plain prompts (one schedule entry, no weights, no BREAK, one chunk) at clip skip 1 are not encoded
here: they go to the pipeline as `prompt=` text, so they stay on diffusers' own path bit for bit.
(Clip skip > 1 on SD 1.x/2.x is always encoded here: diffusers 0.42's `clip_skip` looks for
`text_model` on CLIPTextModel, which transformers 5 no longer has; its SDXL path works.)

SDXL: both text encoders, each weighted on its own (A1111 does the same), their hidden states
concatenated; the pooled embedding is the second encoder's for the first chunk (A1111's choice);
a schedule switch also swaps the pooled embedding (`add_text_embeds` in diffusers' loop).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from studio.prompting.attention import parse_prompt_attention
from studio.prompting.composable import split_and
from studio.prompting.encode import encode_chunks, encode_chunks_sdxl, max_clip_skip, tokenize_line
from studio.prompting.limits import check_chunks, check_parts, plan_schedule
from studio.prompting.networks import NetworkTag, split_network_tags
from studio.prompting.schedule import prompt_schedule
from studio.request import RequestError

__all__ = ["Conditioning", "Embeddings", "PromptInputs", "PromptSchedule", "prepare_prompts", "split_network_tags", "NetworkTag",
           "parse_prompt_attention", "prompt_schedule"]


@dataclass(frozen=True)
class Embeddings:
    tokens: torch.Tensor  # (1, 77 * chunks, dim)
    pooled: torch.Tensor | None = None  # SDXL: (1, projection_dim)


@dataclass(frozen=True)
class PromptSchedule:
    """(end_step, embeddings): at step s the first entry with s <= end_step."""

    entries: tuple[tuple[int, Embeddings], ...]

    def at(self, step: int) -> Embeddings:
        for end_step, embeds in self.entries:
            if step <= end_step:
                return embeds
        return self.entries[-1][1]


@dataclass(frozen=True)
class Conditioning:
    positive: PromptSchedule
    negative: PromptSchedule
    # A1111's composable diffusion (`a :1.2 AND b :0.8`): every subprompt's schedule with its weight
    # (`positive` is the first's); empty for a prompt without AND. studio/generation/composable.py
    # runs the UNet on each and combines them.
    parts: tuple[tuple[PromptSchedule, float], ...] = ()

    @property
    def changes(self) -> bool:
        """Whether the embeddings change during sampling (then the step callback swaps them)."""
        return len(self.positive.entries) > 1 or len(self.negative.entries) > 1 or \
            any(len(schedule.entries) > 1 for schedule, _ in self.parts)

    @property
    def pooled(self) -> bool:
        return self.positive.entries[0][1].pooled is not None

    def pipeline_kwargs(self, step: int, batch: int) -> dict[str, torch.Tensor]:
        """The embeddings arguments of a diffusers call for `batch` images."""
        positive, negative = self.positive.at(step), self.negative.at(step)
        kwargs = {"prompt_embeds": positive.tokens.repeat(batch, 1, 1),
                  "negative_prompt_embeds": negative.tokens.repeat(batch, 1, 1)}
        if self.pooled:
            kwargs["pooled_prompt_embeds"] = positive.pooled.repeat(batch, 1)
            kwargs["negative_pooled_prompt_embeds"] = negative.pooled.repeat(batch, 1)
        return kwargs

    def loop_tensors(self, step: int, batch: int, guidance: bool) -> dict[str, torch.Tensor]:
        """What a `callback_on_step_end` returns to switch a running diffusers loop to `step`'s
        embeddings: the loop holds [negative, positive] under CFG (and SDXL's pooled as add_text_embeds)."""
        kwargs = self.pipeline_kwargs(step, batch)
        pick = (lambda neg, pos: torch.cat([kwargs[neg], kwargs[pos]])) if guidance else (lambda neg, pos: kwargs[pos])
        tensors = {"prompt_embeds": pick("negative_prompt_embeds", "prompt_embeds")}
        if self.pooled:
            tensors["add_text_embeds"] = pick("negative_pooled_prompt_embeds", "pooled_prompt_embeds")
        return tensors

    @property
    def loop_tensor_names(self) -> list[str]:
        return ["prompt_embeds", "add_text_embeds"] if self.pooled else ["prompt_embeds"]


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
            kwargs: dict[str, Any] = {"prompt": [self.prompt] * batch, "negative_prompt": [self.negative_prompt] * batch}
            if self.clip_skip > 1:  # only SDXL takes this path with clip skip (see the module doc)
                kwargs["clip_skip"] = self.clip_skip - 1
            return kwargs
        return self.conditioning.pipeline_kwargs(0, batch)


def prepare_prompts(pipe: Any, prompt: str, negative_prompt: str, steps: int, clip_skip: int = 1) -> PromptInputs:
    """Parse both prompts; encode them here only when they use A1111 syntax or are long.
    Every limit (`studio.prompting.limits`) is checked before anything is encoded."""
    check_clip_skip(pipe, clip_skip)
    prompt, networks = split_network_tags(prompt)
    negative_prompt, _ = split_network_tags(negative_prompt)
    subprompts = split_and(prompt)
    check_parts(len(subprompts))
    # Each subprompt of an AND has its own schedule; the last schedule is the negative prompt's.
    schedules = [*(plan_schedule(text, steps, "prompt") for text, _ in subprompts),
                 plan_schedule(negative_prompt, steps, "negative_prompt")]
    tokenizer = _encoders(pipe)[0][0]
    parsed = {text: parse_prompt_attention(text) for schedule in schedules for _, text in schedule}
    chunks = {text: len(tokenize_line(weighted, tokenizer)) for text, weighted in parsed.items()}
    check_chunks([chunks[text] for text in {text for schedule in schedules[:-1] for _, text in schedule}], "prompt")
    check_chunks([chunks[text] for text in {text for _, text in schedules[-1]}], "negative_prompt")
    # A1111 reads a weight at the end of the prompt even without AND (`a cat :0.5` halves its pull).
    composed = len(subprompts) > 1 or subprompts[0][1] != 1.0
    plain = [_plain_text(schedule, parsed, chunks) for schedule in schedules]
    if not composed and None not in plain and (clip_skip == 1 or _is_sdxl(pipe)):
        return PromptInputs(plain[0], plain[1], networks, clip_skip, None)
    encoded = _encode_schedules(pipe, schedules, parsed, clip_skip)
    parts = tuple(zip(encoded[:-1], (weight for _, weight in subprompts))) if composed else ()
    return PromptInputs(prompt, negative_prompt, networks, clip_skip, Conditioning(encoded[0], encoded[-1], parts))


def check_clip_skip(pipe: Any, clip_skip: int) -> None:
    layers = min(max_clip_skip(encoder) for _, encoder in _encoders(pipe))
    if clip_skip > layers:
        raise RequestError(f"clip_skip must be at most {layers} for this model (its text encoder has {layers} layers)")


def _is_sdxl(pipe: Any) -> bool:
    return getattr(pipe, "text_encoder_2", None) is not None


def _encoders(pipe: Any) -> list[tuple[Any, Any]]:
    """(tokenizer, text encoder) pairs: SD 1.x/2.x has one, SDXL two (the refiner only the second)."""
    pairs = [(pipe.tokenizer, pipe.text_encoder)] if getattr(pipe, "text_encoder", None) is not None else []
    if _is_sdxl(pipe):
        pairs.append((pipe.tokenizer_2, pipe.text_encoder_2))
    return pairs


def _plain_text(schedule: list[tuple[int, str]], parsed: dict[str, list[tuple[str, float]]],
                chunks: dict[str, int]) -> str | None:
    """The text diffusers can encode as is, or None when the prompt needs our encoder."""
    if len(schedule) != 1:
        return None
    text = schedule[0][1]
    weighted = parsed[text]
    if len(weighted) != 1 or weighted[0][1] != 1.0:
        return None  # weighted, or BREAK
    if chunks[text] > 1:
        return None  # longer than one chunk: diffusers would truncate it
    return weighted[0][0]


def _encode_text(pipe: Any, parsed: list[tuple[str, float]], clip_skip: int) -> Embeddings:
    if not _is_sdxl(pipe):
        return Embeddings(encode_chunks(tokenize_line(parsed, pipe.tokenizer), pipe.text_encoder, clip_skip))
    parts = [encode_chunks_sdxl(tokenize_line(parsed, tokenizer), encoder, clip_skip)
             for tokenizer, encoder in _encoders(pipe)]
    return Embeddings(torch.cat([tokens for tokens, _ in parts], dim=-1), parts[-1][1])


def _encode_schedules(pipe: Any, schedules: list[list[tuple[int, str]]], parsed: dict[str, list[tuple[str, float]]],
                      clip_skip: int) -> list[PromptSchedule]:
    cache: dict[str, Embeddings] = {}
    with torch.inference_mode():
        for schedule in schedules:
            for _, text in schedule:
                if text not in cache:
                    cache[text] = _encode_text(pipe, parsed[text], clip_skip)
        longest = max(embeds.tokens.shape[1] for embeds in cache.values())
        padded = cache
        if any(embeds.tokens.shape[1] != longest for embeds in cache.values()):  # the empty prompt only when needed
            empty = _encode_text(pipe, [("", 1.0)], clip_skip).tokens
            padded = {text: _pad(embeds, empty, longest) for text, embeds in cache.items()}
    return [PromptSchedule(tuple((end, padded[text]) for end, text in schedule)) for schedule in schedules]


def _pad(embeds: Embeddings, empty: torch.Tensor, length: int) -> Embeddings:
    """Append empty-prompt chunks up to `length` tokens (A1111's pad_cond_uncond)."""
    missing = (length - embeds.tokens.shape[1]) // empty.shape[1]
    if not missing:
        return embeds
    return Embeddings(torch.cat([embeds.tokens, empty.repeat(1, missing, 1)], dim=1), embeds.pooled)
