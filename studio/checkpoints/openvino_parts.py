"""`--backend openvino` beyond the UNet: the VAE decoder and the CLIP text encoder(s), each converted
with plain `openvino` into its own IR file next to the UNet's (`<cache_dir>/openvino/<key>/<part>.xml`,
the key from the part's own weights: studio.checkpoints.openvino_unet.weights_key).

- VAE decoder: `vae.decoder` alone (what `vae.decode` runs after the 1x1 post_quant_conv, which
  stays eager), dynamic batch, height and width. The stand-in replaces `vae.decoder` for a run, so
  `vae.decode(latents, return_dict=...)`, tiled decoding, live previews ("Full") and the fp32 retry of
  studio.generation.vae_guard keep their interface; the VAE encoder (img2img, hires) stays eager.
- Text encoders (CLIPTextModel, and SDXL's CLIPTextModelWithProjection): 77-token chunks at a dynamic
  batch, every hidden state as an output (clip skip reads hidden_states[-n]) with the last hidden
  state and the pooled (or projected) output: the stand-in answers `text_encoder(ids, ...)` with the
  same transformers output class. Textual-inversion embeddings change the embedding table: its rows
  are part of the key (`embedding_digest`), so a new embedding is a new conversion, never a stale one.

A stand-in's `converted` says whether making it converted (False: its IR came from the disk cache).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from studio.checkpoints import openvino_unet
from studio.errors import ModelError

TOKENS = 77  # CLIP's context: our prompting and diffusers' encode_prompt pad every chunk to it


class _Part(torch.nn.Module):
    """An OpenVINO compiled part standing in for an eager module (kept unregistered for its attributes)."""

    converted = False  # whether making it converted the IR (False: read from the disk cache)

    def __init__(self, eager: torch.nn.Module, xml: Path, hint: str) -> None:
        super().__init__()
        openvino = openvino_unet.require()
        object.__setattr__(self, "eager", eager)  # not a submodule: no second copy in parameters()/to()
        self.hint = hint
        self.compiled = openvino_unet.compile_ir(openvino, xml, hint)
        self.request = self.compiled.create_infer_request()
        self.calls = 0  # inferences run (tests check that a run went through this part)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.eager.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.eager.parameters()).device

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(object.__getattribute__(self, "eager"), name)  # config, text_model, up_blocks ...

    def infer(self, **inputs: torch.Tensor) -> list[torch.Tensor]:
        arrays = {name: (t.detach().float() if t.is_floating_point() else t.detach()).contiguous().numpy()
                  for name, t in inputs.items()}
        result = self.request.infer(arrays, share_inputs=True)
        self.calls += 1
        return [torch.from_numpy(result[port].copy()) for port in self.compiled.outputs]


# --- VAE decoder ---------------------------------------------------------------------------------

class OpenVinoDecoder(_Part):
    """Stands in for `vae.decoder`: latents after post_quant_conv in, pixels (-1..1) out, in z's dtype."""

    def forward(self, z: torch.Tensor, latent_embeds: torch.Tensor | None = None) -> torch.Tensor:
        if latent_embeds is not None:
            raise ModelError("the openvino backend's VAE decoder takes no latent_embeds (use --backend eager)")
        return self.infer(latents=z)[0].to(z.dtype)


def decoder_ir(vae: Any, cache: Path, model_hash: str) -> tuple[Path, bool]:
    decoder = vae.decoder
    xml = cache / openvino_unet.weights_key(decoder, model_hash) / "vae_decoder.xml"

    def examples() -> tuple[list[torch.Tensor], list[Any]]:
        import openvino as ov
        channels = int(decoder.conv_in.in_channels)
        # 9x11 latents: an odd size traces the up-sampling for any size, like the UNet's
        return ([torch.randn(1, channels, 9, 11, dtype=next(decoder.parameters()).dtype)],
                [ov.PartialShape([-1, channels, -1, -1])])

    return xml, openvino_unet.convert_once(_DecoderTraced(decoder), examples, ["latents"], xml, "VAE decoder")


class _DecoderTraced(torch.nn.Module):
    def __init__(self, decoder: torch.nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents)


def openvino_decoder(vae: Any, cache_dir: Path, model_hash: str, hint: str | None = None) -> OpenVinoDecoder:
    xml, converted = decoder_ir(vae, cache_dir / "openvino", model_hash)
    stand = OpenVinoDecoder(vae.decoder, xml, hint or openvino_unet.precision_hint())
    stand.converted = converted
    return stand


def decoder_key(vae: Any, model_hash: str) -> str:
    return openvino_unet.weights_key(vae.decoder, model_hash)


# --- CLIP text encoders --------------------------------------------------------------------------

def _projected(encoder: Any) -> bool:
    return hasattr(encoder, "text_projection")  # CLIPTextModelWithProjection: text_embeds first


class _EncoderTraced(torch.nn.Module):
    """ids -> (first output, second output, every hidden state stacked): tensors only, for the tracer."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.encoder(input_ids, output_hidden_states=True, return_dict=True)
        return out[0], out[1], torch.stack(out.hidden_states)


def embedding_digest(encoder: Any) -> str:
    """The token embedding table's every row (its first values): textual inversion adds or rewrites rows."""
    weight = encoder.get_input_embeddings().weight.detach()
    return hashlib.sha256(weight[:, :8].float().contiguous().numpy().tobytes()).hexdigest()[:16]


def encoder_key(encoder: Any, model_hash: str) -> str:
    return openvino_unet.weights_key(encoder, model_hash, extra=embedding_digest(encoder))


def encoder_ir(encoder: Any, cache: Path, model_hash: str, part: str) -> tuple[Path, bool]:
    xml = cache / encoder_key(encoder, model_hash) / f"{part}.xml"

    def examples() -> tuple[list[torch.Tensor], list[Any]]:
        import openvino as ov
        return [torch.zeros(2, TOKENS, dtype=torch.long)], [ov.PartialShape([-1, TOKENS])]

    return xml, openvino_unet.convert_once(_EncoderTraced(encoder), examples, ["input_ids"], xml, part.replace("_", " "))


class OpenVinoTextEncoder(_Part):
    """Stands in for a CLIP text encoder: `encoder(ids, attention_mask=None, output_hidden_states=...)`
    answered with the eager model's output class (indexing and attributes as transformers')."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None) -> Any:
        from transformers.modeling_outputs import BaseModelOutputWithPooling
        from transformers.models.clip.modeling_clip import CLIPTextModelOutput

        if attention_mask is not None or position_ids is not None or output_attentions:
            raise ModelError("the openvino backend's text encoder takes no attention mask, position ids or "
                             "attentions (use --backend eager)")
        if input_ids.shape[-1] != TOKENS:
            raise ModelError(f"the openvino backend's text encoder takes {TOKENS}-token chunks "
                             f"(got {input_ids.shape[-1]}; use --backend eager)")
        first, second, stacked = self.infer(input_ids=input_ids.long())
        dtype = self.dtype
        hidden = tuple(layer.to(dtype) for layer in stacked) if output_hidden_states else None
        if _projected(self.eager):
            out: Any = CLIPTextModelOutput(text_embeds=first.to(dtype), last_hidden_state=second.to(dtype),
                                           hidden_states=hidden)
        else:
            out = BaseModelOutputWithPooling(last_hidden_state=first.to(dtype), pooler_output=second.to(dtype),
                                             hidden_states=hidden)
        return out if return_dict is not False else out.to_tuple()


def openvino_text_encoder(encoder: Any, cache_dir: Path, model_hash: str, part: str,
                          hint: str | None = None) -> OpenVinoTextEncoder:
    xml, converted = encoder_ir(encoder, cache_dir / "openvino", model_hash, part)
    stand = OpenVinoTextEncoder(encoder, xml, hint or openvino_unet.precision_hint())
    stand.converted = converted
    return stand
