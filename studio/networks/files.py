"""Reading a network file's tensors: .safetensors always, pickles only with --allow-pickle
(then weights only, so a pickle cannot run code)."""
from __future__ import annotations

from typing import Any

import torch
from safetensors.torch import load_file

from studio.networks.discovery import NetworkFile, file_problem
from studio.request import RequestError

KIND_NAMES = {"lora": "LoRA", "embedding": "embedding", "vae": "VAE"}


class MalformedFileError(RequestError):
    """The file is not what its folder holds (damaged, wrong shape, a link out of the folder):
    it is skipped with a warning in its listing, and a 422 when a request names it."""


def read_tensors(entry: NetworkFile, allow_pickle: bool) -> dict[str, Any]:
    what = f"{KIND_NAMES[entry.kind]} {entry.path.name}"
    problem = file_problem(entry.path, entry.root) if entry.root is not None else None
    if problem:
        raise MalformedFileError(f"{what} is skipped: {problem}")
    if entry.is_pickle:
        if not allow_pickle:
            raise RequestError(f"{what} is a pickle file, which can run arbitrary code when loaded; convert it to "
                               ".safetensors, or start with --allow-pickle to load it (weights only)")
        try:
            data = torch.load(entry.path, map_location="cpu", weights_only=True)
        except Exception as error:  # weights_only refuses code-carrying pickles with several error types
            raise RequestError(f"{what} could not be read safely (weights only): {first_line(error)}") from error
    else:
        try:
            data = load_file(str(entry.path), device="cpu")
        except Exception as error:  # safetensors raises its own error types for damaged files
            raise MalformedFileError(f"{what} is not a readable .safetensors file: {first_line(error)}") from error
    while isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise MalformedFileError(f"{what} holds a {type(data).__name__}, not a dict of tensors")
    return data


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
