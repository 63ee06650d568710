"""The options store: A1111's settings that mean something here, in a config.json beside outputs/.

One store serves /sdapi/v1/options and the Settings tab. Values apply to the next job without a
restart (clip skip, live previews, saving, file names, output folders). The file is A1111's: keys
it holds that this studio does not know are kept when it is written back, and ignored on reading.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Mapping

from studio.errors import RequestError, StudioError
from studio.generation.eta import DEFAULT_ETA, eta_kind
from studio.generation.eta import OPTION as ETA_OPTION
from studio.request import GenerationRequest
from studio.service.option_keys import LIVE_KEYS, READ_ONLY_KEYS, SHARED_KEYS, Option, option_table
from studio.settings import Settings

log = logging.getLogger(__name__)


class OptionsForbidden(StudioError):
    """A shared server's caller tried to change a server-wide option (the edges answer 403)."""


class OptionsService:
    def __init__(self, settings: Settings, networks: Any = None, samplers: tuple[str, ...] = ()) -> None:
        self.settings = settings
        self.networks = networks  # sd_vae is the network service's selection
        self.table: dict[str, Option] = option_table(settings, samplers)
        # A1111's place: beside outputs/. A hosted demo's outputs are in the temporary folder: inside them there.
        self.path = (settings.outputs_dir if settings.hosted_demo else settings.outputs_dir.parent) / "config.json"
        self._lock = threading.Lock()
        self._file: dict[str, Any] = {}  # everything the file holds (A1111's other keys too)
        self._values = {key: option.default for key, option in self.table.items()}
        self._load()

    @property
    def shared(self) -> bool:
        """Reachable by others: only the local operator changes server-wide options then."""
        return self.settings.listens_publicly or self.settings.hosted_demo

    # -- reading ---------------------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        with self._lock:
            values = dict(self._values)
        if self.networks is not None:
            values["sd_vae"] = self.networks.selected_vae()
        return values

    def get(self, key: str) -> Any:
        with self._lock:
            return self._values[key]

    # -- writing ---------------------------------------------------------------------------------
    def check(self, changes: Mapping[str, Any], current: Mapping[str, Any], operator: bool) -> dict[str, Any]:
        """The changes as they will be kept; raises RequestError (unknown keys, read-only keys changed,
        bad values: all named) or OptionsForbidden (a server-wide key, not the operator)."""
        unknown = sorted(k for k in changes if k not in self.table and k not in LIVE_KEYS and k not in READ_ONLY_KEYS)
        read_only = sorted(k for k in changes if k in READ_ONLY_KEYS and changes[k] != current.get(k, changes[k]))
        if unknown or read_only:
            parts = []
            if unknown:
                parts.append(f"unknown option(s): {', '.join(unknown)} (see GET /sdapi/v1/options for the keys here)")
            if read_only:
                parts.append(f"read-only option(s): {', '.join(read_only)}")
            raise RequestError("; ".join(parts))
        changed = {k: v for k, v in changes.items() if k not in READ_ONLY_KEYS and v != current.get(k)}
        if not operator:
            refused = sorted(k for k in changed if k not in SHARED_KEYS)
            if refused:
                raise OptionsForbidden(f"only the server's operator may change {', '.join(refused)} on a shared "
                                       "server (set them in config.json beside outputs/ or on a local-only run)")
        kept, errors = {}, []
        for key, value in changes.items():
            if key in self.table:
                try:
                    kept[key] = self.table[key].check(key, value)
                except RequestError as error:
                    errors.append(str(error))
            elif key == "sd_vae" and not isinstance(value, str):
                errors.append("sd_vae must be a VAE name (see /sdapi/v1/sd-vae) or \"Automatic\"")
            elif key in LIVE_KEYS:
                kept[key] = value
        if errors:
            raise RequestError("; ".join(errors))
        return kept

    def update(self, changes: Mapping[str, Any], operator: bool = True) -> list[str]:
        """Check, apply and save; the keys whose value changed. Nothing changes when a check fails."""
        kept = self.check(changes, self.values(), operator)
        if "sd_vae" in kept and self.networks is not None:
            self.networks.select_vae(kept["sd_vae"])
        stored = {k: v for k, v in kept.items() if k in self.table}
        with self._lock:
            changed = [k for k, v in stored.items() if self._values[k] != v]
            self._values.update(stored)
            if changed:
                self._save()
        return changed

    # -- what jobs use -------------------------------------------------------------------------------
    def job_request(self, request: GenerationRequest) -> GenerationRequest:
        """A request that sets no clip skip (1) gets the option's, as A1111's global setting; one that
        sets no eta gets eta_ddim's or eta_ancestral's (by its sampler) when that is not the default."""
        clip_skip = self.get("CLIP_stop_at_last_layers")
        if request.clip_skip == 1 and clip_skip != 1:
            request = request.replace(clip_skip=clip_skip)
        kind = eta_kind(request.sampler_name)
        if request.eta is None and kind is not None and float(self.get(ETA_OPTION[kind])) != DEFAULT_ETA[kind]:
            request = request.replace(eta=float(self.get(ETA_OPTION[kind])))
        if request.restore_faces:  # "Restore faces" runs the options' restorer unless the request names one
            weight = self.get("code_former_weight") if request.code_former_weight == 0.5 else request.code_former_weight
            request = request.replace(face_restoration_model=request.face_restoration_model
                                      or self.get("face_restoration_model"), code_former_weight=weight)
        return request

    def save_folder(self, mode: str) -> Path | None:
        """The option's folder for this mode's images when it is not the default (outputs/<mode>-images)."""
        key = "outdir_txt2img_samples" if mode == "txt2img" else "outdir_img2img_samples"
        value = self.get(key)
        if value == self.table[key].default:
            return None
        folder = Path(value).expanduser()
        folder = folder if folder.is_absolute() else self.path.parent / folder  # A1111: relative to its root
        return folder / datetime.date.today().isoformat()

    def control_units(self) -> int:
        """ControlNet units a request may use (`control_net_unit_count`, the flag's value unless changed)."""
        return int(self.get("control_net_unit_count"))

    def preview_every(self) -> int:
        """Steps between live previews; 0 when they are off."""
        return self.get("show_progress_every_n_steps") if self.get("live_previews_enable") else 0

    # -- the file -----------------------------------------------------------------------------------
    def _load(self) -> None:
        if not self.path.is_file():
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            log.warning("config.json could not be read (%s); the defaults are used", error)
            return
        if not isinstance(data, dict):
            return
        self._file = data
        for key, option in self.table.items():
            if key in data:
                try:
                    self._values[key] = option.check(key, data[key])
                except RequestError as error:
                    log.warning("config.json: %s; the default is used", error)

    def _save(self) -> None:
        """Written to a temporary file and renamed: a crash never leaves half a config.json."""
        data = {**self._file, **self._values}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=".config-", suffix=".json", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(data, stream, indent=4, ensure_ascii=False)
            os.replace(name, self.path)
        except OSError as error:
            Path(name).unlink(missing_ok=True)
            raise StudioError(f"could not save {self.path}: {error.strerror or error}") from error
        self._file = data
