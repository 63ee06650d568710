"""/docs in a browser with no internet: Swagger UI's assets are served by the studio itself."""
import pytest


@pytest.mark.browser
def test_docs_render_with_no_internet(browser, server):
    """Every request that leaves this machine is aborted; Swagger UI must still draw the routes."""
    context = browser.new_context()
    page = context.new_page()
    outside: list[str] = []

    def only_local(route):
        url = route.request.url
        if url.startswith(server.url):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(server.url + "docs")
    page.wait_for_selector(".opblock-summary-path", timeout=60_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/sdapi/v1/txt2img" in path for path in paths)
    assert not outside, f"the docs page asked the internet for: {outside}"
    context.close()
