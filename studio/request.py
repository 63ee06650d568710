"""The one input type of every mode: a frozen GenerationRequest.

No torch, no gradio here. Field names follow AUTOMATIC1111's API where one exists, so the
same JSON serves the UI, the HTTP API, the CLI, extensions and the PNG's `studio` chunk.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from typing import Any, Collection, Mapping

MIN_SIZE, MAX_SIZE = 64, 2048
MAX_STEPS = 150
MAX_CFG = 30.0
MAX_BATCH_SIZE = 8
MAX_BATCH_COUNT = 100
MAX_SEED = 2**32 - 1


class RequestError(ValueError):
    """A request field is invalid; the message names the field and says what is allowed."""


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str = ""
    negative_prompt: str = ""
    sampler_name: str = "Euler a"
    steps: int = 20
    cfg_scale: float = 7.0
    # None means "the model's native size"; the engine records the size it used.
    width: int | None = None
    height: int | None = None
    # -1 draws a random seed; the engine records the seed it used.
    seed: int = -1
    batch_size: int = 1
    n_iter: int = 1
    # None means the model that is loaded (the embedded default when nothing else is).
    model: str | None = None

    def replace(self, **changes: Any) -> "GenerationRequest":
        return dataclasses.replace(self, **changes)

    def validate(
        self,
        samplers: Collection[str] | None = None,
        models: Collection[str] | None = None,
    ) -> "GenerationRequest":
        """Raise RequestError for the first invalid field; return self when all are valid."""
        _check_type("prompt", self.prompt, str)
        _check_type("negative_prompt", self.negative_prompt, str)
        _check_type("sampler_name", self.sampler_name, str)
        if samplers is not None and self.sampler_name not in samplers:
            raise RequestError(
                f"unknown sampler {self.sampler_name!r}; choose one of: {', '.join(samplers)}"
            )
        _check_int("steps", self.steps, 1, MAX_STEPS)
        _check_number("cfg_scale", self.cfg_scale, 0.0, MAX_CFG)
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is None:
                continue
            _check_int(name, value, MIN_SIZE, MAX_SIZE)
            if value % 8:
                raise RequestError(
                    f"{name} must be a multiple of 8 (got {value}; nearest: {_nearest8(value)})"
                )
        _check_int("seed", self.seed, -1, MAX_SEED)
        _check_int("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        _check_int("n_iter", self.n_iter, 1, MAX_BATCH_COUNT)
        if self.model is not None:
            _check_type("model", self.model, str)
            if models is not None and self.model not in models:
                raise RequestError(f"unknown model {self.model!r}; see `python -m studio models`")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GenerationRequest":
        """Build from a mapping; unknown keys are ignored (as A1111's API ignores them)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> "GenerationRequest":
        return cls.from_dict(json.loads(text))


def request_fields() -> tuple[dataclasses.Field, ...]:
    return fields(GenerationRequest)


def _nearest8(value: int) -> int:
    return max(MIN_SIZE, min(MAX_SIZE, int(round(value / 8)) * 8))


def _check_type(name: str, value: Any, kind: type) -> None:
    if not isinstance(value, kind):
        raise RequestError(f"{name} must be a {kind.__name__} (got {type(value).__name__})")


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{name} must be a whole number (got {value!r})")
    if not low <= value <= high:
        raise RequestError(f"{name} must be between {low} and {high} (got {value})")


def _check_number(name: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise RequestError(f"{name} must be a number (got {value!r})")
    if not low <= value <= high:
        raise RequestError(f"{name} must be between {low:g} and {high:g} (got {value:g})")
