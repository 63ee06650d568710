"""Generation: from a validated request and a loaded model to images.

The engine (`engine.py`) runs one job at a time as a short script of passes; each pass (base,
hires, refiner) and each option (variation noise, step cache, VAE guard, previews) is a module of
its own. Samplers are a registry of named diffusers schedulers (`samplers.py`). Nothing here
knows about HTTP, Gradio, queues or files.
"""
