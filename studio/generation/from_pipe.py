"""A mode's pipeline over a loaded pipeline's components, without importing diffusers' AutoPipeline
module for the families the studio ships and most users run (SD 1.x/2.x and SDXL).

`diffusers.pipelines.auto_pipeline` imports every pipeline family diffusers has (~0.4 s CPU per
process, a third of what the CLI's cold image spent above the import floor, issue 26 §4). For
these families the class AutoPipeline picks is known; `build` then does what
`AutoPipelineFor*.from_pipe` does after picking it (same components, same config, same
registration), so the pipeline is the same. Any other family, and ControlNets, go through
AutoPipeline unchanged. (`DiffusionPipeline.from_pipe` is not used: it casts to float32.)
"""
from __future__ import annotations

from typing import Any

import diffusers
from diffusers import DiffusionPipeline

# (the loaded pipeline's class, mode) -> the class AutoPipelineFor<mode> picks for it
KNOWN: dict[tuple[str, str], str] = {
    ("StableDiffusionPipeline", "txt2img"): "StableDiffusionPipeline",
    ("StableDiffusionPipeline", "img2img"): "StableDiffusionImg2ImgPipeline",
    ("StableDiffusionPipeline", "inpaint"): "StableDiffusionInpaintPipeline",
    ("StableDiffusionXLPipeline", "txt2img"): "StableDiffusionXLPipeline",
    ("StableDiffusionXLPipeline", "img2img"): "StableDiffusionXLImg2ImgPipeline",
    ("StableDiffusionXLPipeline", "inpaint"): "StableDiffusionXLInpaintPipeline",
}


def known_class(pipe: DiffusionPipeline, mode: str) -> type[DiffusionPipeline] | None:
    """The pipeline class for `mode` over `pipe` when it is one of KNOWN's, else None."""
    name = KNOWN.get((type(pipe).__name__, mode))
    return None if name is None or type(pipe).__module__.split(".")[0] != "diffusers" else getattr(diffusers, name)


def build(cls: type[DiffusionPipeline], pipe: DiffusionPipeline) -> DiffusionPipeline:
    """`cls` over `pipe`'s components and config: AutoPipelineFor*.from_pipe(pipe) once it has picked
    `cls` (diffusers 0.3x), with no component or option overridden."""
    config = dict(pipe.config)
    modules, optional = cls._get_signature_keys(cls)
    name_or_path = config.pop("_name_or_path", None)
    components = {key: pipe.components[key] for key in pipe.components if key in modules}
    options = {key: config[key] for key in config if key in optional}
    for key in [key[1:] for key in config if key.startswith("_") and key[1:] in optional]:
        options[key] = config.pop(f"_{key}")  # set on a pipeline that was itself made by from_pipe
    kwargs: dict[str, Any] = {**components, **options}
    unused = {f"{'' if key.startswith('_') else '_'}{key}": config[key] for key in config if key not in kwargs}
    missing = set(modules) - set(cls._optional_components) - set(kwargs)
    if missing:
        raise ValueError(f"Pipeline {cls} expected {modules}, but only {set(components)} were passed")
    built = cls(**kwargs)
    built.register_to_config(_name_or_path=name_or_path)
    built.register_to_config(**unused)
    return built
