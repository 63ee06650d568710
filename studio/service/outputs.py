"""Outputs: each user's folder, the History over it, and reading a PNG's parameters (PNG Info)."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from studio.records.history import HistoryIndex, HistoryPage
from studio.records.pnginfo import read_generation_info
from studio.service.styles import StyleService
from studio.service.users import outputs_for, user_names
from studio.settings import Settings


class OutputService:
    def __init__(self, settings: Settings, styles: StyleService) -> None:
        self.settings = settings
        self.styles = styles
        self.users = user_names(settings)
        self._histories: dict[Path, HistoryIndex] = {}
        self._lock = threading.Lock()

    def folder(self, user: str | None) -> Path:
        """outputs/<user>/ when several users share the studio; on a hosted demo each browser session's
        own folder (outputs/sessions/<digest>/: its outputs, History and deletes); else outputs/."""
        return outputs_for(self.settings.outputs_dir, self.users, user, per_session=self.settings.hosted_demo)

    def user_settings(self, user: str | None) -> Settings:
        """The settings a user's jobs run with: their outputs folder."""
        return self.settings.replace(outputs_dir=self.folder(user))

    def history(self, user: str | None = None) -> HistoryIndex:
        root = self.folder(user)
        with self._lock:
            if root not in self._histories:
                self._histories[root] = HistoryIndex(root)
            return self._histories[root]

    def history_page(self, page: int, per_page: int, query: str, user: str | None = None) -> HistoryPage:
        return self.history(user).page(page, per_page, query)

    def delete(self, path: str | Path, user: str | None = None) -> list[Path]:
        """Delete one output (and its companions) inside the user's outputs."""
        return self.history(user).delete(path)

    def read_png(self, path: Path) -> dict[str, Any]:
        """PNG Info: the PNG's parameters; when its infotext names styles that are here and its
        prompts are exactly those styles applied, the fields hold the bare prompts and the styles
        (as A1111 pastes them), so Generate styles them once, to the same prompts."""
        info = read_generation_info(path)
        fields = info["fields"]
        if "prompt" in fields:
            bare = self.styles.bare_prompts(info["params"], fields["prompt"], fields.get("negative_prompt", ""))
            if bare is not None:
                names, (prompt, negative) = bare
                info["fields"] = {**fields, "prompt": prompt, "negative_prompt": negative, "styles": names}
        return info
