"""Who shares the studio: the user names of --auth / --api-auth, and each one's outputs folder.

With more than one user, each user's outputs go under outputs/<user>/ (A1111's layout inside it),
and every route that lists, serves or deletes outputs looks only there."""
from __future__ import annotations

import re
from pathlib import Path

from studio.errors import StudioError
from studio.settings import Settings

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


class UserNameError(StudioError):
    """A user name that cannot be a folder name under outputs/."""


def _pairs(value: object) -> list[tuple[str, str]]:
    if not value:
        return []
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return [value]  # type: ignore[list-item]
    return list(value)  # type: ignore[call-overload]


def user_names(settings: Settings) -> tuple[str, ...]:
    """Every user name of the UI and API credentials, in order, once each."""
    names: dict[str, None] = {}
    for user, _ in _pairs(settings.auth) + _pairs(settings.api_auth):
        names.setdefault(user)
    return tuple(names)


def check_user_names(names: tuple[str, ...]) -> None:
    """With several users each name becomes a folder: letters, digits, _ . @ - only, not '*-images'."""
    if len(names) < 2:
        return
    for name in names:
        if not SAFE_NAME.fullmatch(name) or name.endswith("-images"):
            raise UserNameError(f"user name {name[:64]!r} cannot name an outputs folder: use letters, digits, "
                                "_ . @ - (at most 64, not ending in -images)")


def outputs_for(root: Path, users: tuple[str, ...], user: str | None) -> Path:
    """outputs/<user>/ when several users share the studio and `user` is one of them; else outputs/
    (a single-user studio, the CLI, callers without a login — outputs/ is in no user's history)."""
    if len(users) < 2 or user not in users:
        return root
    return root / user


def owner_of(path: Path, root: Path, users: tuple[str, ...]) -> str | None:
    """The user whose folder holds `path` (resolved), None when outside every user's folder."""
    try:
        relative = path.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    first = relative.parts[0] if relative.parts else ""
    return first if first in users else None
