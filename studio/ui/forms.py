"""Map widget values to GenerationRequest fields by name (never by position)."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import gradio as gr

from studio.request import GenerationRequest, RequestError

_FIELD_TYPES = {f.name: str(f.type) for f in dataclasses.fields(GenerationRequest)}


def _convert(name: str, value: Any) -> Any:
    kind = _FIELD_TYPES[name].split("|")[0].strip()
    if kind.startswith("tuple[str"):  # a multi-select dropdown's list
        return tuple(value or ())
    if value is None or value == "":
        return None if "None" in _FIELD_TYPES[name] else dataclasses.MISSING
    try:
        if kind == "int":
            number = float(value)
            if number != int(number):
                raise RequestError(f"{name} must be a whole number (got {value})")
            return int(number)
        if kind == "float":
            return float(value)
    except (TypeError, ValueError):
        raise RequestError(f"{name} must be a number (got {value!r})")
    return value


class RequestForm:
    """A set of widgets, each bound to one request field by its name."""

    def __init__(self, widgets: dict[str, gr.components.Component],
                 followers: dict[gr.components.Component, Callable[[dict[str, Any]], Any]] | None = None) -> None:
        """`followers`: widgets that are no request field but follow some (the seed's "Extra"
        checkbox): on fill each gets fn(fields), unless that is None."""
        unknown = set(widgets) - set(_FIELD_TYPES)
        if unknown:
            raise ValueError(f"widgets for unknown request fields: {sorted(unknown)}")
        self.widgets = widgets
        self.followers = followers or {}

    @property
    def fill_outputs(self) -> list[gr.components.Component]:
        """Every widget `fill` may update."""
        return [*self.widgets.values(), *self.followers]

    @property
    def inputs(self) -> set[gr.components.Component]:
        return set(self.widgets.values())

    def to_request(self, values: dict[gr.components.Component, Any], **extra: Any) -> GenerationRequest:
        fields: dict[str, Any] = {}
        for name, widget in self.widgets.items():
            converted = _convert(name, values.get(widget))
            if converted is not dataclasses.MISSING:
                fields[name] = converted
        return GenerationRequest(**{**fields, **extra})

    def fill(self, fields: dict[str, Any]) -> dict[gr.components.Component, Any]:
        """Widget updates for the given request fields; fields without a widget are ignored."""
        updates = {self.widgets[name]: widget_value(self.widgets[name], value)
                   for name, value in fields.items() if name in self.widgets}
        for widget, follow in self.followers.items():
            value = follow(fields)
            if value is not None:
                updates[widget] = value
        return updates


def widget_value(widget: gr.components.Component, value: Any) -> Any:
    """Index-typed radios and dropdowns take the choice's label, not the field's index."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(widget, gr.Slider) and value == -1 and widget.minimum == 0:
        return 0  # a field whose -1 means "off" (seed_resize_from_w/h) shows it as the slider's 0
    if getattr(widget, "type", None) == "index" and isinstance(value, int) and not isinstance(value, bool):
        choices = getattr(widget, "choices", [])
        if 0 <= value < len(choices):
            choice = choices[value]
            return choice[0] if isinstance(choice, (tuple, list)) else choice
    return value
