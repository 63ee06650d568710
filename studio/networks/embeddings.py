"""Textual inversion embeddings, triggered by their file name in the prompt (as in A1111).

Formats: A1111 .pt (`string_to_param["*"]`, a pickle: only with --allow-pickle, weights only),
A1111 .safetensors (`emb_params`), diffusers' `{token: tensor}`, SDXL's `clip_l`/`clip_g`.
Each is added once per model with diffusers' `load_textual_inversion` (token = file stem, the
vectors of a multi-vector embedding become `name name_1 ...`, which diffusers' encode_prompt
expands); a prompt that does not name it tokenizes exactly as before.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import DiffusionPipeline

from studio.networks.discovery import NetworkFile
from studio.networks.files import first_line, read_tensors
from studio.request import RequestError


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


def mentioned(texts: list[str], entries: list[NetworkFile]) -> list[NetworkFile]:
    """The embeddings whose name stands as a word in any of the texts (A1111 matches tokens)."""
    joined = "\n".join(texts)
    return [e for e in entries if re.search(rf"(?<![\w]){re.escape(e.name)}(?![\w])", joined)]


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
            raise RequestError(f"embedding {entry.path.name} is not a textual inversion file "
                               "(expected string_to_param, emb_params, clip_l/clip_g or a single tensor)")
        vectors = {"": tensors[0]}
    vectors = {k: (v.unsqueeze(0) if v.ndim == 1 else v).detach().float() for k, v in vectors.items()}
    checkpoint = data.get("sd_checkpoint")
    return EmbeddingData(vectors, _int(data.get("step")), str(checkpoint) if checkpoint is not None else None,
                         _str(data.get("sd_checkpoint_name")))


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
            pipe.load_textual_inversion({entry.name: vectors}, token=entry.name, text_encoder=encoder,
                                        tokenizer=tokenizer)
        except ValueError as error:
            raise RequestError(f"embedding {entry.path.name} could not be added: {first_line(error)}") from error


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _str(value: Any) -> str | None:
    return str(value) if value is not None else None
