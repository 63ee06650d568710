"""The text-encoder side of A1111's prompt handling: 75-token chunks, clip skip, emphasis.

Ports of `tokenize_line` (chunks of 75 tokens between BOS and EOS; BREAK starts a new chunk; a
chunk that fills up moves the text after its last comma, if within 20 tokens, into the next),
`encode_with_transformers` (clip skip: hidden state -N through the final layer norm, which is what
diffusers' `clip_skip=N-1` computes) and the "Original" emphasis (multiply each token's output by
its weight, then rescale so the chunk's mean is what it was).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from studio.prompting.attention import BREAK_WEIGHT

COMMA_BACKTRACK = 20  # A1111's default `comma_padding_backtrack`


@dataclass
class Chunk:
    tokens: list[int] = field(default_factory=list)
    multipliers: list[float] = field(default_factory=list)


def tokenize_line(parsed: Sequence[tuple[str, float]], tokenizer: Any) -> list[Chunk]:
    """Chunks of `model_max_length` tokens (BOS + 75 + EOS/padding) with a weight per token."""
    length = tokenizer.model_max_length - 2
    comma = tokenizer.get_vocab().get(",</w>")
    texts = [text for text, _ in parsed]
    tokenized = tokenizer(texts, truncation=False, add_special_tokens=False)["input_ids"] if texts else []
    chunks: list[Chunk] = []
    chunk = Chunk()
    last_comma = -1

    def next_chunk() -> None:
        nonlocal chunk, last_comma
        chunks.append(_close(chunk, length, tokenizer))
        chunk, last_comma = Chunk(), -1

    for tokens, (text, weight) in zip(tokenized, parsed):
        if text == "BREAK" and weight == BREAK_WEIGHT:
            next_chunk()
            continue
        for token in tokens:
            if token == comma:
                last_comma = len(chunk.tokens)
            elif len(chunk.tokens) == length and last_comma != -1 and len(chunk.tokens) - last_comma <= COMMA_BACKTRACK:
                cut = last_comma + 1
                moved = Chunk(chunk.tokens[cut:], chunk.multipliers[cut:])
                chunk = Chunk(chunk.tokens[:cut], chunk.multipliers[:cut])
                next_chunk()
                chunk = moved
            if len(chunk.tokens) == length:
                next_chunk()
            chunk.tokens.append(token)
            chunk.multipliers.append(weight)
    if chunk.tokens or not chunks:
        next_chunk()
    return chunks


def _close(chunk: Chunk, length: int, tokenizer: Any) -> Chunk:
    """BOS + tokens + EOS, then the tokenizer's padding token (EOS for SD 1.x, "!" for SD 2.x)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    missing = length - len(chunk.tokens)
    tokens = [tokenizer.bos_token_id, *chunk.tokens, tokenizer.eos_token_id] + [pad] * missing
    return Chunk(tokens, [1.0, *chunk.multipliers, 1.0] + [1.0] * missing)


def encode_chunks(chunks: Sequence[Chunk], text_encoder: Any, clip_skip: int = 1) -> torch.Tensor:
    """(1, 77 * len(chunks), dim): each chunk encoded on its own, weighted, then concatenated."""
    return torch.cat([encode_chunk(chunk, text_encoder, clip_skip) for chunk in chunks], dim=1)


def encode_chunk(chunk: Chunk, text_encoder: Any, clip_skip: int = 1) -> torch.Tensor:
    ids = torch.tensor([chunk.tokens], device=text_encoder.device)
    if clip_skip <= 1:
        z = text_encoder(ids, attention_mask=None)[0]
    else:
        hidden = text_encoder(ids, attention_mask=None, output_hidden_states=True)[-1]
        z = final_layer_norm(text_encoder)(hidden[-clip_skip])
    z = z.to(dtype=text_encoder.dtype)
    if any(weight != 1.0 for weight in chunk.multipliers):
        z = emphasize(z, chunk.multipliers)
    return z


def final_layer_norm(text_encoder: Any) -> Any:
    """transformers 5 moved CLIPTextModel's layers up from `.text_model` (diffusers 0.42 still looks
    there, so its own `clip_skip` fails with an AttributeError: we encode clip skip ourselves)."""
    return getattr(text_encoder, "text_model", text_encoder).final_layer_norm


def emphasize(z: torch.Tensor, multipliers: Sequence[float]) -> torch.Tensor:
    """A1111's "Original" emphasis: scale each token, then restore the mean of the whole chunk."""
    weights = torch.tensor(multipliers, dtype=z.dtype, device=z.device).reshape(1, -1, 1)
    original_mean = z.mean()
    z = z * weights.expand(z.shape)
    return z * (original_mean / z.mean())


def encode_chunks_sdxl(chunks: Sequence[Chunk], text_encoder: Any, clip_skip: int = 1) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One SDXL text encoder: hidden state -(clip_skip + 1) without the final norm, as diffusers'
    SDXL pipelines take it (A1111's penultimate layer at clip skip 1), weighted per chunk; and the
    projected pooled output of the first chunk (only CLIPTextModelWithProjection has one)."""
    outputs, pooled = [], None
    for index, chunk in enumerate(chunks):
        ids = torch.tensor([chunk.tokens], device=text_encoder.device)
        result = text_encoder(ids, output_hidden_states=True)
        if index == 0 and result[0].ndim == 2:
            pooled = result[0]
        z = result.hidden_states[-(clip_skip + 1)].to(dtype=text_encoder.dtype)
        if any(weight != 1.0 for weight in chunk.multipliers):
            z = emphasize(z, chunk.multipliers)
        outputs.append(z)
    return torch.cat(outputs, dim=1), pooled


def max_clip_skip(text_encoder: Any) -> int:
    return int(text_encoder.config.num_hidden_layers)
