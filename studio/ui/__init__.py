"""Gradio front end. Imports gradio and the pure core (request, infotext) only, never diffusers:
each tab receives the services it uses from the container (studio.service.container), never the engine."""
