"""Apply a request's networks to the loaded model: LoRA tags, embeddings named in the prompt, VAE.

`NetworkManager.apply(model, request)` is the one entry the engine calls before sampling. What it
loads is cached on the model (`LoadedModel.networks`, a `ModelNetworks`) and dropped with it;
every run sets the whole state (adapters on/off and their weights, the VAE), so runs do not
depend on what ran before them.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.networks import discovery, embeddings, hashes, lora, lycoris, vae
from studio.networks.discovery import AUTOMATIC, NetworkFile
from studio.networks.embedding_names import NameMatcher, expansion
from studio.networks.files import MalformedFileError
from studio.networks.index import LoraIndex
from studio.networks.tags import NetworkTag, extract_network_tags
from studio.request import GenerationRequest, RequestError
from studio.settings import Settings

log = logging.getLogger(__name__)

@dataclass
class ModelNetworks:
    """What one loaded model holds beside its own weights (lives and dies with the model)."""

    original_vae: Any
    loras: dict[str, str] = field(default_factory=dict)  # file stamp -> adapter name
    lycoris: dict[str, lycoris.LycorisNetwork] = field(default_factory=dict)  # adapter name -> LoHa/LoKr network
    embeddings: dict[str, str] = field(default_factory=dict)  # embedding name -> file stamp
    embedding_vectors: dict[str, int] = field(default_factory=dict)  # embedding name -> its vectors
    vae_name: str = AUTOMATIC
    vaes: dict[str, Any] = field(default_factory=dict)  # file stamp -> module (the last external one)


@dataclass(frozen=True)
class AppliedNetworks:
    """What a run used: the prompts as encoded (tags removed) and the networks with their hashes."""

    prompt: str = ""
    negative_prompt: str = ""
    loras: tuple[tuple[str, str], ...] = ()  # (name as mentioned, short hash)
    embeddings: tuple[tuple[str, str], ...] = ()
    vae: str = AUTOMATIC
    vae_hash: str | None = None
    expansions: tuple[tuple[str, str], ...] = ()  # embedding name -> its placeholder tokens

    def encoded(self, text: str) -> str:
        """Another text of the run (a per-image prompt) as it is encoded: network tags taken out,
        the run's embeddings put in."""
        text = extract_network_tags(text)[0]
        return NameMatcher(dict(self.expansions)).rewrite(text, dict(self.expansions)) if self.expansions else text

    def infotext(self) -> dict[str, str]:
        """A1111's keys: `VAE hash`, `VAE` (a file VAE only), `Lora hashes`, `TI hashes`."""
        params: dict[str, str] = {}
        if self.vae != AUTOMATIC:
            params["VAE hash"] = self.vae_hash or ""
            params["VAE"] = self.vae
        if self.loras:
            params["Lora hashes"] = _hash_list(self.loras)
        if self.embeddings:
            params["TI hashes"] = _hash_list(self.embeddings)
        return params

    def recipe(self) -> dict[str, Any]:
        return {"loras": dict(self.loras), "embeddings": dict(self.embeddings),
                "vae": {"name": self.vae, "hash": self.vae_hash}}


def _hash_list(items: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f"{name.replace(':', '').replace(',', '')}: {short}" for name, short in items)


class NetworkManager:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.selected_vae = AUTOMATIC  # what a request without `vae` uses (A1111's sd_vae option)
        self.lora_index = LoraIndex(settings)

    # -- discovery --------------------------------------------------------------------------
    def loras(self) -> list[NetworkFile]:
        return discovery.discover_loras(self.settings)

    def embeddings(self) -> list[NetworkFile]:
        return discovery.discover_embeddings(self.settings)

    def vaes(self) -> list[NetworkFile]:
        return discovery.discover_vaes(self.settings)

    def vae_names(self) -> list[str]:
        return [AUTOMATIC, *(entry.name for entry in self.vaes())]

    def resolve_vae(self, name: str | None) -> str:
        """The canonical VAE name a request runs with ("Automatic" or a models/VAE entry)."""
        name = self.selected_vae if name is None else name
        return AUTOMATIC if discovery.is_automatic_vae(name) else discovery.find_vae(name, self.settings).name

    def select_vae(self, name: str | None) -> str:
        """Set the VAE of requests that name none (the UI header, the API's sd_vae option)."""
        self.selected_vae = self.resolve_vae(name or AUTOMATIC)
        return self.selected_vae

    # -- applying ---------------------------------------------------------------------------
    def apply(self, model: Any, request: GenerationRequest) -> AppliedNetworks:
        """Load (once) and activate what the request names; undo what it does not name."""
        prompt, tags = extract_network_tags(request.prompt)
        negative, _ = extract_network_tags(request.negative_prompt)  # tags there are removed, not applied
        state = self._state(model)
        loras = self._apply_loras(model, state, tags)
        (prompt, negative), used, expansions = self._apply_embeddings(model, state, [prompt, negative])
        vae_name, vae_hash = self._apply_vae(model, state, request.vae)
        return AppliedNetworks(prompt, negative, loras, used, vae_name, vae_hash, expansions)

    def _state(self, model: Any) -> ModelNetworks:
        if model.networks is None:
            model.networks = ModelNetworks(original_vae=model.pipe.vae)
        return model.networks

    def _apply_loras(self, model: Any, state: ModelNetworks, tags: list[NetworkTag]) -> tuple[tuple[str, str], ...]:
        for tag in tags:
            if tag.kind == "hypernet":
                raise RequestError(f"prompt tag {tag.text}: hypernetworks are listed (/sdapi/v1/hypernetworks) but "
                                   "cannot be applied here; use a LoRA (<lora:...>) instead")
            if tag.kind != "lora":
                raise RequestError(f"prompt tag {tag.text}: <{tag.kind}:...> networks are not supported "
                                   "(only <lora:...> and <lyco:...>)")
        table = self.lora_index.table()  # one listing for all the tags; metadata read once per file
        found = [(tag, table.find(tag.name, self.settings)) for tag in tags]
        weights: dict[str, list[float]] = {}
        mentioned: dict[str, str] = {}
        short: dict[Path, str] = {}
        for tag, info in found:
            entry = info.entry
            if entry.path not in short:
                short[entry.path] = hashes.lora_hash(entry.path, self.settings, dict(info.metadata))
            mentioned.setdefault(tag.name, short[entry.path])
            if not tag.active:
                continue
            adapter = self._adapter(model, state, entry)
            te, unet = weights.get(adapter, [0.0, 0.0])
            weights[adapter] = [te + tag.te_weight, unet + tag.unet_weight]  # a repeated tag adds up
        active = [lora.ActiveLora(name, te, unet) for name, (te, unet) in weights.items() if name not in state.lycoris]
        lora.activate(model.pipe, active, loaded_any=len(state.loras) > len(state.lycoris))
        for network in state.lycoris.values():  # LoHa/LoKr: hooks, on exactly while named
            lycoris.detach(network)
        lycoris.attach([(state.lycoris[name], te, unet) for name, (te, unet) in weights.items() if name in state.lycoris])
        return tuple(mentioned.items())

    def _adapter(self, model: Any, state: ModelNetworks, entry: NetworkFile) -> str:
        stamp = _stamp(entry.path)
        if stamp not in state.loras:
            for old_stamp in [s for s in state.loras if s.startswith(f"{entry.path}|")]:  # the file changed
                old = state.loras.pop(old_stamp)
                if old in state.lycoris:
                    lycoris.detach(state.lycoris.pop(old))
                else:
                    lora.delete_adapter(model.pipe, old)
            adapter = "lora_" + hashlib.sha1(stamp.encode()).hexdigest()[:12]
            tensors = lora.read_lora(entry, self.settings.allow_pickle)
            if lycoris.kind_of(tensors) is not None:
                lora.check_family(entry, tensors, model.pipe, model.entry.title)
                state.lycoris[adapter] = lycoris.load(model.pipe, tensors, entry.path.name, model.entry.title)
            else:
                lora.load_lora(model.pipe, entry, adapter, self.settings.allow_pickle, model.entry.title, tensors)
            state.loras[stamp] = adapter
        return state.loras[stamp]

    def _apply_embeddings(self, model: Any, state: ModelNetworks, texts: list[str]
                          ) -> tuple[list[str], tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
        """The texts with each embedding they name (as whole tokens, A1111) put in as its placeholder
        tokens; the embeddings used with their hashes; the expansions. A malformed file is skipped
        (its name stays plain text, as in A1111, whose database never loaded it)."""
        entries = self.embeddings()
        matcher = NameMatcher(entry.name for entry in entries)
        mentioned = matcher.mentioned(texts)
        used, expansions = [], {}
        for entry in [e for e in entries if e.name in mentioned]:
            if entry.name in expansions:
                continue  # the same name in two subfolders: the first one, as A1111
            stamp = _stamp(entry.path)
            loaded = state.embeddings.get(entry.name)
            if loaded is None:
                try:
                    data = embeddings.read_embedding(entry, self.settings.allow_pickle)
                except MalformedFileError as error:
                    log.warning("%s", error)
                    continue
                embeddings.load_embedding(model.pipe, entry, data, model.entry.title)
                state.embeddings[entry.name], state.embedding_vectors[entry.name] = stamp, data.count
            elif loaded != stamp:
                raise RequestError(f"embedding {entry.path.name} changed on disk since it was loaded; "
                                   "reload the model to use the new version")
            expansions[entry.name] = expansion(entry.name, state.embedding_vectors[entry.name])
            used.append((entry.name, hashes.embedding_hash(entry.path, self.settings)))
        return [matcher.rewrite(text, expansions) for text in texts], tuple(used), tuple(expansions.items())

    def _apply_vae(self, model: Any, state: ModelNetworks, requested: str | None) -> tuple[str, str | None]:
        name = self.resolve_vae(requested)
        pipelines = [model.pipe, *model.mode_pipelines.values()]
        if name == AUTOMATIC:
            vae.set_vae(pipelines, state.original_vae)
            state.vae_name = AUTOMATIC
            return AUTOMATIC, None
        entry = discovery.find_vae(name, self.settings)
        stamp = _stamp(entry.path)
        if stamp not in state.vaes:
            module = vae.load_vae(entry, model.pipe, self.settings, model.entry.title)
            state.vaes = {stamp: module}  # keep one external VAE: they are large
        vae.set_vae(pipelines, state.vaes[stamp])
        state.vae_name = name
        return name, hashes.vae_hash(entry.path, self.settings)


def _stamp(path: Path) -> str:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return f"{path}|" + ",".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    stat = path.stat()
    return f"{path}|{stat.st_size}:{stat.st_mtime_ns}"
