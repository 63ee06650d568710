"""Who shares the studio: the user names of --auth / --api-auth, and each one's outputs folder.

With more than one user, each user's outputs go under outputs/<user>/ (A1111's layout inside it),
and every route that lists, serves or deletes outputs looks only there."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from studio.errors import StudioError
from studio.settings import Settings

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
SESSION = "session:"  # a browser session without a login, as the UI names it (ui/sharing.py)
SESSIONS_FOLDER = "sessions"  # outputs/sessions/<digest>/ on a hosted demo


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


def outputs_for(root: Path, users: tuple[str, ...], user: str | None, per_session: bool = False) -> Path:
    """outputs/<user>/ when several users share the studio and `user` is one of them; on a hosted demo
    (`per_session`) a browser session without a login is its own user: outputs/sessions/<digest>/,
    named by a digest of its secret session id (nobody else can name it, nor list it); else outputs/
    (a single-user studio, the CLI, callers without a login — outputs/ is in no user's history)."""
    if per_session and user is not None and user.startswith(SESSION) and len(user) > len(SESSION):
        return root / SESSIONS_FOLDER / hashlib.sha256(user.encode()).hexdigest()[:32]
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
