"""Issue 22 item 4: on a hosted demo (a Space) each browser session is its own user: its outputs go
to its own folder, and another visitor's History neither lists, finds nor deletes them."""
from __future__ import annotations

import pytest

from tests.browser.conftest import started_server, studio_page
from tests.browser.test_sharing_ui import saved_with_seed, start, wait_seed

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def space_server(tmp_path_factory: pytest.TempPathFactory):
    with started_server(tmp_path_factory.mktemp("space"), ["--hosted-demo", "--no-api"]) as running:
        yield running


def open_history(page, search: str = "") -> str:
    page.click("button[role=tab]:has-text('History')")
    page.wait_for_function("document.querySelector('#history_page')?.innerText.includes('image(s)')", timeout=60_000)
    if search:
        page.fill("#history_search textarea, #history_search input", search)
        page.press("#history_search textarea, #history_search input", "Enter")
        page.wait_for_timeout(1500)  # the search answers in place; its text is read below
    return page.locator("#history_page").inner_text()


def test_each_visitor_has_their_own_outputs_and_history(browser, space_server):
    with studio_page(browser, space_server.url) as visitor_a, studio_page(browser, space_server.url) as visitor_b:
        start(visitor_a, 4242, 2)
        wait_seed(visitor_a, 4242)
        saved = saved_with_seed(space_server.outputs, 4242)
        assert len(saved) == 1
        relative = saved[0].relative_to(space_server.outputs)
        assert relative.parts[0] == "sessions" and relative.parts[2] == "txt2img-images"  # A's own folder
        assert "1 image(s)" in open_history(visitor_a)

        # B: nothing of A's is listed, found by search, or there to select and delete.
        assert "0 image(s)" in open_history(visitor_b)
        assert "0 image(s)" in open_history(visitor_b, "circle number 4242")
        assert visitor_b.locator("#history_gallery .thumbnail-item").count() == 0
        visitor_b.click("button[role=tab]:has-text('txt2img')")
        start(visitor_b, 4343, 2)
        wait_seed(visitor_b, 4343)
        mine = saved_with_seed(space_server.outputs, 4343)
        assert len(mine) == 1 and mine[0].parent.parent.parent != saved[0].parent.parent.parent
        assert "1 image(s)" in open_history(visitor_b, "circle")  # only B's own
        assert saved[0].is_file()  # A's image is untouched
        assert "1 image(s)" in open_history(visitor_a, "circle")
