"""Credentials from flags, files and the environment (so they need not be in /proc/<pid>/cmdline)."""
from __future__ import annotations

import pytest

from studio.cli.main import build_parser
from studio.cli.settings_flags import settings_from_args


def settings_for(*argv: str):
    return settings_from_args(build_parser().parse_args(["serve", *argv]))


def test_auth_file_in_a1111_format_gives_every_user(tmp_path):
    path = tmp_path / "auth.txt"
    path.write_text("alice:secret:with:colons\nbob:pw1, carol:pw2\n\n", encoding="utf-8")
    settings = settings_for("--auth-file", str(path))
    assert settings.auth == (("alice", "secret:with:colons"), ("bob", "pw1"), ("carol", "pw2"))
    assert settings_for("--api-auth-file", str(path)).api_auth[0] == ("alice", "secret:with:colons")


def test_auth_from_the_environment_when_no_flag_is_given(monkeypatch):
    monkeypatch.setenv("STUDIO_AUTH", "ui:one")
    monkeypatch.setenv("STUDIO_API_AUTH", "api:two")
    settings = settings_for()
    assert settings.auth == ("ui", "one") and settings.api_auth == ("api", "two")
    assert settings_for("--auth", "flag:wins").auth == ("flag", "wins")


@pytest.mark.parametrize("argv, message", [
    (["--auth", "user:"], "user 'user' has an empty password"),
    (["--api-auth", "a:b,c:"], "user 'c' has an empty password"),
    (["--auth", "nocolon"], "must look like user:password"),
])
def test_empty_passwords_and_malformed_credentials_are_refused(argv, message):
    with pytest.raises(SystemExit, match=message):
        settings_for(*argv)


def test_an_empty_password_in_the_environment_or_a_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_AUTH", "user:")
    with pytest.raises(SystemExit, match="STUDIO_AUTH: user 'user' has an empty password"):
        settings_for()
    monkeypatch.delenv("STUDIO_AUTH")
    path = tmp_path / "auth.txt"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="holds no user:password line"):
        settings_for("--auth-file", str(path))
    with pytest.raises(SystemExit, match="cannot read"):
        settings_for("--auth-file", str(tmp_path / "missing.txt"))
