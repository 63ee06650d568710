"""Prompt styles (A1111's styles.csv): the names, their prompts, applying and saving them."""
from __future__ import annotations

from studio.prompting.styles import (
    Style,
    apply_request_styles,
    apply_styles,
    infotext_style_names,
    load_styles,
    save_style,
    unapply_styles,
)
from studio.request import GenerationRequest
from studio.settings import Settings


class StyleService:
    """The styles of styles.csv (the user's, else the shipped example), read afresh on each call."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def styles(self) -> dict[str, Style]:
        """By name, in file order."""
        return load_styles(self.settings)

    def names(self) -> list[str]:
        return list(self.styles())

    def apply(self, prompt: str, negative_prompt: str, names: list[str]) -> tuple[str, str]:
        """Both prompts with the named styles expanded (what "apply" puts into the prompt boxes)."""
        return apply_styles(prompt, negative_prompt, names, self.styles())

    def expand(self, request: GenerationRequest) -> GenerationRequest:
        """The request with its `styles` expanded into its prompts (unknown names refused)."""
        return apply_request_styles(request, self.styles()) if request.styles else request

    def save(self, name: str, prompt: str, negative_prompt: str) -> list[str]:
        """Save the prompts as a style in the user's styles file; returns the style names."""
        return list(save_style(self.settings, Style(name, prompt, negative_prompt)))

    def bare_prompts(self, params: dict[str, str], prompt: str, negative_prompt: str) -> tuple[list[str], tuple[str, str]] | None:
        """When an infotext names styles that are here and its prompts are exactly those styles applied:
        (the names, the prompts without them), as A1111 pastes them; else None."""
        names = infotext_style_names(params)
        if not names:
            return None
        bare = unapply_styles(prompt, negative_prompt, names, self.styles())
        return (names, bare) if bare is not None else None
