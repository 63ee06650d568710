"""Logging in through the browser with --auth: the login form loads (its assets are reachable before
login) and, once logged in, the whole studio works."""
from __future__ import annotations

import pytest

from tests.conftest import AUTH_PASSWORD, AUTH_USER


@pytest.mark.browser
def test_login_form_then_the_studio(browser, auth_server):
    """On the shared `--auth alice:long-secret` server (tests/conftest.py)."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(auth_server.url)
        page.get_by_label("username").fill(AUTH_USER)
        page.get_by_label("password").fill(AUTH_PASSWORD)
        page.get_by_role("button", name="Login").click()
        page.wait_for_selector("#txt2img_generate", timeout=120_000)
        assert page.locator("#model_checkpoint").count() == 1
    finally:
        context.close()
