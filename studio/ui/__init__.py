"""Gradio front end. Imports gradio and the pure core (request, infotext) only, never diffusers:
tabs receive what they need (submit, interrupt, model list ...) through a UiContext."""
