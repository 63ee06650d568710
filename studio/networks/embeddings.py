"""Textual inversion embeddings, triggered by their file name in the prompt (as in A1111).

Formats: A1111 .pt (`string_to_param["*"]`, a pickle: only with --allow-pickle, weights only),
A1111 .safetensors (`emb_params`), diffusers' `{token: tensor}`, SDXL's `clip_l`/`clip_g`.
Each is added once per model with diffusers' `load_textual_inversion` under a placeholder token
(`embedding_names`: never a vocabulary word); the prompt's whole-token mentions of the name are
replaced by its vectors' tokens, so a prompt that does not name it tokenizes exactly as before.
A malformed file (a scalar, a [2, 3, 128] or [0, 128] tensor) is a MalformedFileError: skipped.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from diffusers import DiffusionPipeline

from studio.networks.discovery import NetworkFile
from studio.networks.embedding_names import placeholder
from studio.networks.files import MalformedFileError, first_line, read_tensors
from studio.request import RequestError

MAX_VECTORS = 75  # one chunk of CLIP tokens: A1111's embeddings are a handful of vectors


@dataclass(frozen=True)
class EmbeddingData:
    vectors: dict[str, torch.Tensor]  # "clip_l"/"clip_g" for SDXL, "" for one text encoder
    step: int | None = None
    sd_checkpoint: str | None = None
    sd_checkpoint_name: str | None = None

    @property
    def shape(self) -> int:
        return int(next(iter(self.vectors.values())).shape[-1])

    @property
    def count(self) -> int:
        return int(next(iter(self.vectors.values())).shape[0])


def read_embedding(entry: NetworkFile, allow_pickle: bool) -> EmbeddingData:
    data = read_tensors(entry, allow_pickle)
    if "clip_l" in data and "clip_g" in data:
        vectors = {"clip_l": data["clip_l"], "clip_g": data["clip_g"]}
    elif isinstance(data.get("string_to_param"), dict):
        vectors = {"": next(iter(data["string_to_param"].values()))}
    elif "emb_params" in data:
        vectors = {"": data["emb_params"]}
    else:
        tensors = [v for v in data.values() if isinstance(v, torch.Tensor)]
        if len(tensors) != 1:
            raise MalformedFileError(f"embedding {entry.path.name} is not a textual inversion file "
                               "(expected string_to_param, emb_params, clip_l/clip_g or a single tensor)")
        vectors = {"": tensors[0]}
    vectors = {k: _vectors(entry, v) for k, v in vectors.items()}
    checkpoint = data.get("sd_checkpoint")
    return EmbeddingData(vectors, _int(data.get("step")), str(checkpoint) if checkpoint is not None else None,
                         _str(data.get("sd_checkpoint_name")))


def _vectors(entry: NetworkFile, value: Any) -> torch.Tensor:
    """The embedding as [vectors, width], or MalformedFileError: a scalar, a [2, 3, 128] or a
    [0, 128] tensor is no embedding (it used to stop start-up or fail when used)."""
    if not isinstance(value, torch.Tensor):
        raise MalformedFileError(f"embedding {entry.path.name} holds a {type(value).__name__}, not a tensor")
    value = value.unsqueeze(0) if value.ndim == 1 else value
    shape = "x".join(map(str, value.shape)) or "a scalar"
    if value.ndim != 2 or not 1 <= value.shape[0] <= MAX_VECTORS or value.shape[1] < 1:
        raise MalformedFileError(f"embedding {entry.path.name} has shape {shape}; expected [vectors, width] "
                                 f"with 1 to {MAX_VECTORS} vectors")
    if not value.is_floating_point() or not torch.isfinite(value).all():
        raise MalformedFileError(f"embedding {entry.path.name} is not a tensor of finite numbers")
    return value.detach().float()


def text_width(pipe: DiffusionPipeline) -> int:
    return int(pipe.text_encoder.get_input_embeddings().weight.shape[1])


def load_embedding(pipe: DiffusionPipeline, entry: NetworkFile, data: EmbeddingData, model: str) -> None:
    sdxl = getattr(pipe, "text_encoder_2", None) is not None
    if sdxl != ("clip_l" in data.vectors):
        family = "SDXL" if "clip_l" in data.vectors else "SD 1.x/2.x"
        raise RequestError(f"embedding {entry.path.name} is for {family} models; it does not fit {model}")
    targets = [("clip_l", pipe.text_encoder, pipe.tokenizer), ("clip_g", pipe.text_encoder_2, pipe.tokenizer_2)] \
        if sdxl else [("", pipe.text_encoder, pipe.tokenizer)]
    for key, encoder, tokenizer in targets:
        vectors = data.vectors[key].to(dtype=encoder.dtype)
        width = int(encoder.get_input_embeddings().weight.shape[1])
        if vectors.shape[-1] != width:
            raise RequestError(f"embedding {entry.path.name} has {vectors.shape[-1]}-wide vectors; {model}'s text "
                               f"encoder takes {width} (it was made for another model family)")
        try:
            token = placeholder(entry.name)  # never a word of the vocabulary (an embedding may be named "a")
            pipe.load_textual_inversion({token: vectors}, token=token, text_encoder=encoder, tokenizer=tokenizer)
        except ValueError as error:
            raise RequestError(f"embedding {entry.path.name} could not be added: {first_line(error)}") from error


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _str(value: Any) -> str | None:
    return str(value) if value is not None else None
