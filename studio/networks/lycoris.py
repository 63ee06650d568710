"""LyCORIS LoHa and LoKr networks (kohya / LyCORIS files with `hada_*` or `lokr_*` keys).

diffusers' loaders take LoRA/LoCon only, so these are applied as A1111's built-in Lora extension
applies them: each layer's weight change is computed once from the file (LoHa: the Hadamard product
of two low-rank products; LoKr: a Kronecker product, with low-rank halves when the file has them;
both times alpha / rank) and added to the layer's output while the network is active — through a
forward hook, so the model's own weights are never touched and a run without the network computes
exactly what a fresh model computes.

Layers are found by the kohya names diffusers' loaders know (`lora_unet_<module path with _>`,
`lora_te_` / `lora_te1_`, `lora_te2_`); SDXL's `input_blocks` names are mapped with diffusers' own
table first. Every layer of the file must find its layer, or the file is refused as made for
another model family.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from studio.request import RequestError

KINDS = {".hada_w1_a": "LoHa", ".lokr_w1": "LoKr", ".lokr_w1_a": "LoKr", ".lokr_w2": "LoKr", ".lokr_w2_a": "LoKr"}
PREFIXES = {"lora_unet_": "unet", "lora_te_": "text_encoder", "lora_te1_": "text_encoder", "lora_te2_": "text_encoder_2"}


def kind_of(state: dict[str, torch.Tensor]) -> str | None:
    """"LoHa", "LoKr" or None (not a LyCORIS LoHa/LoKr file)."""
    return next((kind for marker, kind in KINDS.items() if any(marker in key for key in state)), None)


@dataclass
class LycorisNetwork:
    """One loaded file: each target layer with its weight change (in the layer's dtype)."""

    name: str
    deltas: dict[str, list[tuple[torch.nn.Module, torch.Tensor]]] = field(default_factory=dict)  # component -> layers
    hooks: list[Any] = field(default_factory=list)

    @property
    def layers(self) -> int:
        return sum(len(layers) for layers in self.deltas.values())


def load(pipe: Any, state: dict[str, torch.Tensor], name: str, model: str) -> LycorisNetwork:
    """The network's weight changes for this pipeline's layers (RequestError when it does not fit)."""
    state = _diffusers_names(state, pipe)
    modules = _named_layers(pipe)
    network = LycorisNetwork(name)
    for stem in sorted({key.split(".", 1)[0] for key in state}):
        own = {key.split(".", 1)[1]: value for key, value in state.items() if key.split(".", 1)[0] == stem}
        if not any(part in own for part in ("hada_w1_a", "lokr_w1", "lokr_w1_a")):
            continue  # e.g. a stray alpha
        found = modules.get(_normal(stem))
        if found is None:
            raise RequestError(f"LoRA {name} does not fit {model}: its layer {stem[:120]} is not in this model "
                               "(it was made for another model family)")
        component, module = found
        delta = _delta(own, module, name)
        network.deltas.setdefault(component, []).append((module, delta.to(module.weight.dtype)))
    if not network.layers:
        raise RequestError(f"LoRA {name} holds no LoHa/LoKr layers")
    return network


def attach(networks: list[tuple[LycorisNetwork, float, float]]) -> None:
    """Exactly these networks with these (text encoder, UNet) weights add to their layers' outputs."""
    for network, te_weight, unet_weight in networks:
        detach(network)
        for component, layers in network.deltas.items():
            weight = unet_weight if component == "unet" else te_weight
            if weight == 0:
                continue
            for module, delta in layers:
                network.hooks.append(module.register_forward_hook(_adder(module, delta, weight)))


def detach(network: LycorisNetwork) -> None:
    for hook in network.hooks:
        hook.remove()
    network.hooks.clear()


def attached_to(model: torch.nn.Module) -> bool:
    """Whether a LyCORIS network adds to any layer of `model` now (its hooks, not other forward hooks:
    the studio's own readers of the UNet's output leave the output as it is)."""
    return any(getattr(hook, "lycoris", False) for module in model.modules() for hook in module._forward_hooks.values())


def _adder(module: torch.nn.Module, delta: torch.Tensor, weight: float) -> Any:
    if isinstance(module, torch.nn.Conv2d):
        def add(mod: Any, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            return output + weight * F.conv2d(inputs[0], delta, None, module.stride, module.padding, module.dilation,
                                              module.groups)
    else:
        def add(mod: Any, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            return output + weight * F.linear(inputs[0], delta)
    add.lycoris = True  # type: ignore[attr-defined]  # what attached_to looks for
    return add


def _delta(own: dict[str, torch.Tensor], module: torch.nn.Module, name: str) -> torch.Tensor:
    """The layer's weight change, shaped as its weight (A1111's network_hada / network_lokr)."""
    shape = module.weight.shape
    f = {key: value.float() for key, value in own.items()}
    if "hada_w1_a" in f:
        if "hada_t1" in f:
            raise RequestError(f"LoRA {name}: LoHa with Tucker decomposition (hada_t1) is not supported yet")
        w1 = f["hada_w1_a"] @ f["hada_w1_b"]
        w2 = f["hada_w2_a"] @ f["hada_w2_b"]
        rank = f["hada_w1_b"].shape[0]
        delta = w1 * w2
    else:
        if "lokr_t2" in f:
            raise RequestError(f"LoRA {name}: LoKr with Tucker decomposition (lokr_t2) is not supported yet")
        w1 = f["lokr_w1"] if "lokr_w1" in f else f["lokr_w1_a"] @ f["lokr_w1_b"]
        w2 = f["lokr_w2"] if "lokr_w2" in f else f["lokr_w2_a"] @ f["lokr_w2_b"]
        rank = f["lokr_w1_b"].shape[0] if "lokr_w1_b" in f else f["lokr_w2_b"].shape[0] if "lokr_w2_b" in f else None
        if w2.ndim == 4:
            w1 = w1[:, :, None, None]
        delta = torch.kron(w1, w2)
    alpha = float(f["alpha"]) if "alpha" in f else None
    scale = alpha / rank if alpha and rank else 1.0
    if delta.numel() != module.weight.numel():
        raise RequestError(f"LoRA {name}: a layer's change has {delta.numel()} values, its layer {module.weight.numel()} "
                           "(it was made for another model family)")
    return (delta * scale).reshape(shape)


def _normal(stem: str) -> str:
    """kohya names with and without transformers' `text_model` level."""
    return stem.replace("_text_model_", "_")


def _named_layers(pipe: Any) -> dict[str, tuple[str, torch.nn.Module]]:
    layers: dict[str, tuple[str, torch.nn.Module]] = {}
    for prefix, component in PREFIXES.items():
        owner = getattr(pipe, component, None)
        if owner is None:
            continue
        for path, module in owner.named_modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                path = path.removesuffix(".base_layer")  # a layer a peft LoRA wraps keeps its name
                layers[_normal(prefix + path.replace(".", "_"))] = (component, module)
    return layers


def _diffusers_names(state: dict[str, torch.Tensor], pipe: Any) -> dict[str, torch.Tensor]:
    """SDXL files name UNet layers as the original (SGM) code does: map them as diffusers' loaders do."""
    if not any(part in key for key in state for part in ("input_blocks", "middle_block", "output_blocks")):
        return state
    from diffusers.loaders.lora_conversion_utils import _maybe_map_sgm_blocks_to_diffusers

    return _maybe_map_sgm_blocks_to_diffusers(dict(state), pipe.unet.config)
