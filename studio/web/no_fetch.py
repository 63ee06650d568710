"""The studio never fetches a URL for a request: no DNS lookup, no outbound connection.

Gradio's file routes take a URL where a path is expected (`/gradio_api/file=https://host/x.png`
streams it from the host, after resolving the name), its `/proxy=` route relays other Spaces, and
its payload handling downloads any file given as a URL (uploads, examples, queue data). A public
studio doing that is a probe and a relay for anyone. Two guards:
- `refused_file_route(path)`: the request gate answers 400 to a file route naming a URL form
  (`scheme:`, `//host`, `\\\\host`, however percent-encoded) and to every proxy route;
- `refuse_url_fetches()`: Gradio's download helpers are replaced, at launch, by a refusal, so a URL
  inside a payload fails as a bad input instead of being fetched.
"""
from __future__ import annotations

import re
from typing import Any, NoReturn
from urllib.parse import unquote

FILE_PREFIXES = ("/gradio_api/file=", "/gradio_api/file/", "/file=", "/file/")
PROXY_PREFIXES = ("/gradio_api/proxy=", "/proxy=")
URL_FORM = re.compile(r"^\s*(?:[A-Za-z][A-Za-z0-9+.\-]+:|[\\/]{2})")  # a scheme (2+ letters: not C:), or //host
REFUSAL = "the studio does not fetch URLs: name a file it serves"


class UrlFetchRefused(ValueError):
    """A URL where the studio expects its own file."""


def names_a_url(named: str) -> bool:
    for _ in range(4):  # %2F, %252F...: decoded as many times as a server along the way might
        if URL_FORM.match(named):
            return True
        decoded = unquote(named)
        if decoded == named:
            return False
        named = decoded
    return True  # still encoded after four rounds: nobody's file name


def refused_file_route(path: str) -> bool:
    """True for a proxy route, or a file route whose named file is a URL form."""
    if path.startswith(PROXY_PREFIXES):
        return True
    prefix = next((p for p in FILE_PREFIXES if path.startswith(p)), None)
    return prefix is not None and names_a_url(path[len(prefix):])


def _refuse(*args: Any, **kwargs: Any) -> NoReturn:
    raise UrlFetchRefused(REFUSAL)


async def _refuse_async(*args: Any, **kwargs: Any) -> NoReturn:
    raise UrlFetchRefused(REFUSAL)


def refuse_url_fetches() -> None:
    """Replace Gradio's URL download helpers with a refusal (idempotent; called by `serve`)."""
    from gradio import processing_utils, routes

    processing_utils.async_ssrf_protected_get = _refuse_async
    processing_utils.async_ssrf_protected_download = _refuse_async
    processing_utils.ssrf_protected_download = _refuse
    processing_utils.save_url_to_cache = _refuse
    routes.secure_url_stream_response = _refuse_async
