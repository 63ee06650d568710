"""Logging in through the browser with --auth: the login form loads (its assets are reachable before
login) and, once logged in, the whole studio works."""
from __future__ import annotations

import pytest

from tests.browser.conftest import started_server


@pytest.mark.browser
def test_login_form_then_the_studio(browser, tmp_path):
    with started_server(tmp_path, ["--auth", "alice:long-secret"]) as server:
        context = browser.new_context()
        page = context.new_page()
        page.goto(server.url)
        page.get_by_label("username").fill("alice")
        page.get_by_label("password").fill("long-secret")
        page.get_by_role("button", name="Login").click()
        page.wait_for_selector("#txt2img_generate", timeout=120_000)
        assert page.locator("#model_checkpoint").count() == 1
        context.close()
