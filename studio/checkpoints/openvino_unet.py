"""`--backend openvino`: the UNet converted with plain `openvino` (no optimum) and run as an
OpenVINO compiled model behind the same diffusers pipeline.

The conversion traces the UNet as it is at that moment (LoRA adapters with their weights included:
that is the fusing), with dynamic batch, height, width and prompt length, so sizes change without
converting again. The IR is kept on disk under `<cache_dir>/openvino/<key>/` where the key is the
weights' identity (model hash, dtype, a digest of every parameter's name, shape and first values),
the LoRA state (active adapters and their scales) and the openvino version: a second load, or a
restart, reads the IR instead of converting. A stand-in's `converted` says whether making it converted.

Precision: bf16 where the CPU has it (avx512_bf16 / AMX, studio.checkpoints.devices), else fp32;
OpenVINO's CPU plugin otherwise picks bf16 by itself on such CPUs, so fp32 is asked for explicitly.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

from studio.checkpoints.devices import cpu_has_fast_bf16
from studio.errors import ModelError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "eager", "openvino")
# bump when the traced inputs, the wrapper or the conversion change: old IRs are then not reused
# (3: weights converted from the contiguous layout; bf16 channels_last IRs of FORMAT 2 were wrong)
FORMAT = 3
_lock = threading.Lock()


def available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def require() -> Any:
    try:
        import openvino
    except ImportError:
        raise ModelError("--backend openvino needs the openvino package: pip install openvino "
                         "(or pip install -e \".[openvino]\")") from None
    return openvino


def resolve_backend(choice: str, device: torch.device) -> str:
    """`auto` is eager: OpenVINO's UNet step wins on bf16 CPUs at SD1.5 size (docs/performance.md), but
    its one-time conversion and the features it refuses (ControlNet, step cache, ToMe...) are not
    worth it for an unasked default. `openvino` runs on the CPU only."""
    if choice not in BACKENDS:
        raise ModelError(f"backend must be one of {', '.join(BACKENDS)} (got {choice!r})")
    if choice == "openvino" and device.type != "cpu":
        raise ModelError(f"the openvino backend runs on the CPU; this studio runs on {device} (use --backend eager)")
    return "openvino" if choice == "openvino" else "eager"


def precision_hint(fast_bf16: bool | None = None) -> str:
    """OpenVINO's INFERENCE_PRECISION_HINT: bf16 where the CPU computes it natively, else f32;
    $STUDIO_OPENVINO_PRECISION (f32 or bf16) overrides it (tests and comparisons ask for f32)."""
    forced = os.environ.get("STUDIO_OPENVINO_PRECISION", "").lower()
    if forced in ("f32", "bf16"):
        return forced
    return "bf16" if (cpu_has_fast_bf16() if fast_bf16 is None else fast_bf16) else "f32"


def _input_names(unet: Any) -> list[str]:
    names = ["sample", "timestep", "encoder_hidden_states"]
    if getattr(unet.config, "time_cond_proj_dim", None):
        names.append("timestep_cond")  # LCM-distilled UNets take the guidance embedding
    if getattr(unet.config, "addition_embed_type", None) == "text_time":
        names += ["text_embeds", "time_ids"]  # SDXL's pooled prompt and size conditioning
    return names


class _Traced(torch.nn.Module):
    """The UNet with positional tensor inputs and one tensor out (what the converter traces)."""

    def __init__(self, unet: Any, names: list[str]) -> None:
        super().__init__()
        self.unet, self.names = unet, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        given = dict(zip(self.names, inputs))
        added = {k: given.pop(k) for k in ("text_embeds", "time_ids") if k in given}
        return self.unet(**given, added_cond_kwargs=added or None, return_dict=False)[0]


def _examples(unet: Any, names: list[str]) -> tuple[list[torch.Tensor], list[Any]]:
    """Example inputs (batch 2, 9x9 latents, 77 tokens) and their dynamic shapes. An odd size: the UNet
    then traces its up-sampling to the skip connections' sizes, so latents of any size (not only
    multiples of 2^levels, e.g. 520 px: 65 latents) run on the same graph."""
    import openvino as ov

    config, dtype = unet.config, unet.dtype
    context = int(config.cross_attention_dim)
    tensors = {"sample": torch.randn(2, config.in_channels, 9, 9, dtype=dtype),
               "timestep": torch.tensor([500.0, 500.0]),
               "encoder_hidden_states": torch.randn(2, 77, context, dtype=dtype)}
    shapes = {"sample": [-1, config.in_channels, -1, -1], "timestep": [-1], "encoder_hidden_states": [-1, -1, context]}
    if "timestep_cond" in names:
        tensors["timestep_cond"] = torch.randn(2, config.time_cond_proj_dim, dtype=dtype)
        shapes["timestep_cond"] = [-1, config.time_cond_proj_dim]
    if "text_embeds" in names:
        pooled = int(unet.add_embedding.linear_1.in_features) - 6 * int(config.addition_time_embed_dim)
        tensors.update(text_embeds=torch.randn(2, pooled, dtype=dtype), time_ids=torch.ones(2, 6, dtype=dtype))
        shapes.update(text_embeds=[-1, pooled], time_ids=[-1, 6])
    return [tensors[n] for n in names], [ov.PartialShape(shapes[n]) for n in names]


def weights_key(module: Any, model_hash: str, extra: str = "") -> str:
    """What a converted IR depends on: the weights (with LoRA layers and scales), the inputs, openvino.
    `extra`: more of the weights than the first values (the text encoders' embedding tables: textual
    inversion adds or rewrites rows)."""
    openvino = require()
    dtype = next(module.parameters()).dtype
    digest = hashlib.sha256(f"{FORMAT}|{openvino.__version__}|{model_hash}|{dtype}".encode())
    with torch.no_grad():
        for name, param in module.named_parameters():
            digest.update(f"{name}{tuple(param.shape)}".encode())
            first = param.detach()
            while first.ndim > 1:  # a view of the first values: no copy of channels-last weights
                first = first[0]
            digest.update(first[:16].float().numpy().tobytes())
    digest.update(lora_state(module).encode())
    digest.update(extra.encode())
    return digest.hexdigest()[:24]


def lora_state(unet: Any) -> str:
    """peft's active adapters and scales, layer by layer (the same adapters at other weights trace
    another graph)."""
    parts = []
    for name, module in unet.named_modules():
        scaling = getattr(module, "scaling", None)
        if isinstance(scaling, dict) and hasattr(module, "active_adapters"):
            active = sorted(module.active_adapters)
            parts.append(f"{name}:{getattr(module, 'disable_adapters', False)}:"
                         f"{[(a, scaling.get(a)) for a in active]}")
    return ";".join(parts)


def converted_ir(unet: Any, cache: Path, model_hash: str) -> tuple[Path, bool]:
    """The IR file of this UNet state, converted once (then read from the cache); True when this call converted."""
    names = _input_names(unet)
    xml = cache / weights_key(unet, model_hash) / "unet.xml"
    return xml, convert_once(_Traced(unet, names), lambda: _examples(unet, names), names, xml, "UNet")


def convert_once(traced: torch.nn.Module, examples: Any, names: list[str], xml: Path, what: str) -> bool:
    """Convert `traced` (positional tensor inputs `names`, example inputs and shapes from `examples()`)
    into `xml` unless it is there already; True when this call converted."""
    openvino = require()
    folder = xml.parent
    with _lock:
        if xml.is_file() and xml.with_suffix(".bin").is_file():
            return False
        inputs, shapes = examples()
        log.info("converting the %s to OpenVINO (once per weights; cached in %s)", what, folder)
        with contiguous_weights(traced):  # until saved: the converted model reads the weights' memory
            try:
                with torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # TracerWarnings for diffusers' shape checks, which hold for any size
                    model = openvino.convert_model(traced.eval(), example_input=tuple(inputs), input=shapes)
            except Exception as error:  # the converter raises its own OpConversionFailure, RuntimeError...
                raise ModelError(f"OpenVINO could not convert this {what}: {str(error).splitlines()[0][:300]}") from error
            for port, name in zip(model.inputs, names):
                port.get_tensor().set_names({name})
            model = _float32_edges(openvino, model)
            folder.mkdir(parents=True, exist_ok=True)
            partial = xml.with_name(xml.stem + ".partial.xml")
            openvino.save_model(model, partial, compress_to_fp16=False)
            del model
        partial.with_suffix(".bin").replace(xml.with_suffix(".bin"))  # .bin first: the .xml marks it complete
        partial.replace(xml)
        return True


@contextmanager
def contiguous_weights(module: torch.nn.Module) -> Iterator[None]:
    """The module's channels_last weights in the contiguous layout while it is converted, restored after.

    OpenVINO's PyTorch frontend shares the weights' memory and reads bf16 tensors as if contiguous:
    the studio's CPU bf16 layout (channels_last, studio.checkpoints.devices) gave NaN outputs, and a
    segfault on SD1.5's UNet. The layout changes in place (each weight's copy replaces it), so
    the memory peak stays that of one weight."""
    moved = [tensor for tensor in (*module.parameters(), *module.buffers())
             if tensor.dim() == 4 and not tensor.is_contiguous()]
    for tensor in moved:
        tensor.data = tensor.data.contiguous()
    try:
        yield
    finally:
        for tensor in moved:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)


def _float32_edges(openvino: Any, model: Any) -> Any:
    """fp32 float inputs and outputs whatever the weights' dtype (numpy has no bf16); integer inputs
    (token ids) stay as they are."""
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(model)
    for index, port in enumerate(model.inputs):
        if port.get_element_type().is_real():
            ppp.input(index).tensor().set_element_type(openvino.Type.f32)
    for index, port in enumerate(model.outputs):
        if port.get_element_type().is_real():
            ppp.output(index).tensor().set_element_type(openvino.Type.f32)
    return ppp.build()


def compile_ir(openvino: Any, xml: Path, hint: str) -> Any:
    """The IR compiled for the CPU at `hint` precision."""
    # torch's thread count (--threads, else the physical cores): OpenVINO would otherwise take every logical CPU
    config = {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": torch.get_num_threads()}
    return openvino.Core().compile_model(str(xml), "CPU", config)


class OpenVinoUNet(torch.nn.Module):
    """Stands in for UNet2DConditionModel inside a pipeline: same config, dtype and device, same
    call; the eager UNet stays (unregistered) for whatever else reads its attributes."""

    converted = False  # whether making it converted the IR (False: read from the disk cache)

    def __init__(self, unet: Any, xml: Path, hint: str) -> None:
        super().__init__()
        openvino = require()
        object.__setattr__(self, "eager", unet)  # not a submodule: no second copy in parameters()/to()
        self.names = _input_names(unet)
        self.hint = hint
        self.compiled = compile_ir(openvino, xml, hint)
        self.request = self.compiled.create_infer_request()

    @property
    def config(self) -> Any:
        return self.eager.config

    @property
    def dtype(self) -> torch.dtype:
        return self.eager.dtype

    @property
    def device(self) -> torch.device:
        return self.eager.device

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(object.__getattribute__(self, "eager"), name)  # add_embedding, attn_processors ...

    def forward(self, sample: torch.Tensor, timestep: Any, encoder_hidden_states: torch.Tensor,
                timestep_cond: torch.Tensor | None = None, cross_attention_kwargs: dict | None = None,
                added_cond_kwargs: dict | None = None, return_dict: bool = True, **unsupported: Any) -> Any:
        extra = sorted(k for k, v in unsupported.items() if v is not None) + (["cross_attention_kwargs"]
                                                                              if cross_attention_kwargs else [])
        if extra:
            raise ModelError(f"the openvino backend's UNet takes no {', '.join(extra)} (use --backend eager)")
        steps = torch.as_tensor(timestep).float().flatten()  # diffusers passes one step as a 0-d tensor
        given = {"sample": sample, "timestep": steps.expand(sample.shape[0]) if steps.numel() == 1 else steps,
                 "encoder_hidden_states": encoder_hidden_states, "timestep_cond": timestep_cond,
                 **(added_cond_kwargs or {})}
        inputs = {name: given[name].detach().float().contiguous().numpy() for name in self.names}
        result = self.request.infer(inputs, share_inputs=True)
        out = torch.from_numpy(result[self.compiled.output(0)].copy()).to(sample.dtype)
        return UNet2DConditionOutput(sample=out) if return_dict else (out,)


def openvino_unet(unet: Any, cache_dir: Path, model_hash: str, hint: str | None = None) -> OpenVinoUNet:
    """The compiled OpenVINO stand-in of `unet` in its current state (converted or read from the cache)."""
    xml, converted = converted_ir(unet, cache_dir / "openvino", model_hash)
    stand = OpenVinoUNet(unet, xml, hint or precision_hint())
    stand.converted = converted
    return stand
