"""Enabling and disabling extensions: persisted in the cache folder, refused from the UI when the
studio listens beyond this computer (or on a hosted demo)."""
from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from studio.service.extensions.loading import (
    DISABLED,
    LOADED,
    PENDING,
    SESSION_DISABLED,
    STATE_FILE,
    ExtensionAccessError,
    ExtensionError,
    ExtensionRecord,
)
from studio.settings import Settings

log = logging.getLogger(__name__)


class EnableDisable:
    """The ExtensionManager's switches (a mixin: it holds `settings`, `records` and `_lock`)."""

    settings: Settings
    records: dict[str, ExtensionRecord]
    _lock: threading.RLock

    # -- enable / disable ------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.settings.cache_dir / STATE_FILE

    def disabled_folders(self) -> set[str]:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
            return {str(name) for name in data.get("disabled", [])}
        except FileNotFoundError:
            return set()
        except (OSError, ValueError, AttributeError) as error:
            log.warning("ignoring unreadable %s: %s", self.state_path, error)
            return set()

    def change_refusal(self) -> str | None:
        """Why the UI may not enable/disable extensions now, or None when it may."""
        s = self.settings
        if s.hosted_demo:
            return "Extensions are locked on a hosted demo: they are code that runs on this server."
        if not s.listens_publicly or s.enable_insecure_extension_access:
            return None
        where = "a public share link" if s.share else f"{s.host}, reachable from the network"
        return (f"Enabling or disabling extensions from the UI is refused: the app listens on {where}. "
                f"Restart with --enable-insecure-extension-access to allow it, or edit {self.state_path} and restart.")

    def set_enabled(self, folder: str, enabled: bool) -> str:
        """Persist the choice; returns what happened, in words. Raises ExtensionAccessError when refused."""
        refusal = self.change_refusal()
        if refusal:
            raise ExtensionAccessError(refusal)
        with self._lock:
            record = self.records.get(folder)
            if record is None:
                raise ExtensionError(f"no extension folder {folder!r} in {self.settings.extensions_dir}")
            disabled = self.disabled_folders()
            disabled = disabled - {folder} if enabled else disabled | {folder}
            self._write_state(disabled)
            return self._enable(record) if enabled else self._disable(record)

    def _enable(self, record: ExtensionRecord) -> str:
        if record.module is not None:  # registered this session: its hooks can resume right away
            record.state, record.reason, record.failures = LOADED, "", 0
            return f"Enabled '{record.name}'."
        if record.state == DISABLED:
            record.state, record.reason = PENDING, ""
            return f"Enabled '{record.name}': it loads at the next start."
        return f"Enabled '{record.name}'; it is not loaded now ({record.status})."

    def _disable(self, record: ExtensionRecord) -> str:
        was_loaded = record.module is not None and record.state in (LOADED, SESSION_DISABLED)
        record.state, record.reason = DISABLED, ""
        if was_loaded:
            return (f"Disabled '{record.name}': its hooks and scripts stop now; "
                    "its tabs and samplers go away at the next start.")
        return f"Disabled '{record.name}'."

    def _write_state(self, disabled: set[str]) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"disabled": sorted(disabled)}, indent=2), encoding="utf-8")
        os.replace(tmp, self.state_path)

