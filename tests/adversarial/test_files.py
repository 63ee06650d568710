"""File routes under attack: a logged-in user of a shared studio tries to read files outside outputs/
through every Gradio file route, with every traversal spelling. Only outputs/ may be served."""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from studio.cli.serve import serve
from studio.settings import Settings
from tests.adversarial.conftest import MARKER, Tally
from tests.adversarial.test_access import route_table
from tests.browser.conftest import free_port

USER, PASSWORD = "artist", "correct horse"


@pytest.fixture(scope="module")
def logged_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Path, list[str]]]:
    root = tmp_path_factory.mktemp("files")
    (root / "secret.txt").write_text(MARKER)  # beside outputs/, never to be served
    (root / "models").mkdir()
    (root / "models" / "secret.txt").write_text(MARKER)
    outputs = root / "outputs"
    (outputs / "txt2img-images").mkdir(parents=True)
    (outputs / "txt2img-images" / "mine.txt").write_text("served")
    settings = Settings(models_dir=root / "models", outputs_dir=outputs, extensions_dir=root / "ext",
                        cache_dir=root / "cache", host="127.0.0.2", port=free_port(), open_browser=False,
                        auth=(USER, PASSWORD))
    _, demo, app = serve(settings, block=False)
    file_routes = sorted({path for _, path in route_table(app.routes) if "file" in path and "{" in path})
    client = httpx.Client(base_url=f"http://127.0.0.2:{settings.port}", timeout=120)
    assert client.post("/login", data={"username": USER, "password": PASSWORD}).status_code == 200
    try:
        yield client, root, file_routes
    finally:
        client.close()
        demo.close()


def spellings(root: Path) -> list[str]:
    """Ways to name the secret files: relative climbs, absolute paths, encodings, odd separators."""
    targets = [str(root / "secret.txt"), str(root / "models" / "secret.txt"), "/etc/passwd", "/proc/self/environ"]
    climbs = ["../", "..%2f", "%2e%2e/", "%2e%2e%2f", "..%252f", "....//", "..\\", "%2e%2e%5c"]
    names = ["secret.txt", "models/secret.txt", "etc/passwd"]
    spelled = list(targets)
    spelled += [str(root / "outputs" / ".." / "secret.txt"), str(root / "outputs") + "/../models/secret.txt"]
    spelled += [climb * depth + name for climb, depth, name in itertools.product(climbs, (1, 3, 8), names)]
    spelled += [target + "%00.png" for target in targets[:2]]
    return spelled


def test_no_file_route_serves_anything_outside_outputs(logged_in):
    client, root, file_routes = logged_in
    assert file_routes, "the census found no file routes"
    tally = Tally("file routes")
    leaks = []
    for route, name in itertools.product(file_routes, spellings(root)):
        path = route.split("{")[0] + name
        response = client.get(path)
        handled = response.status_code < 500 and MARKER not in response.text and "root:" not in response.text
        tally.tried(handled)
        if not handled:
            leaks.append(f"{path} -> {response.status_code}")
    assert not leaks, "\n".join(leaks[:20])


def test_outputs_are_still_served_to_the_logged_in_user(logged_in):
    client, root, file_routes = logged_in
    mine = root / "outputs" / "txt2img-images" / "mine.txt"
    served = [client.get(route.split("{")[0] + str(mine)) for route in file_routes if "proxy" not in route]
    assert any(response.status_code == 200 and response.text == "served" for response in served)
