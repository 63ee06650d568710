"""Services: the studio's one interface for every edge (web routes, Gradio UI, CLI, Ray cluster).

Jobs enter through one admission point (limits and costs checked before any work), wait in the
fair queue, run on the engine and are saved with their records. Models, networks, outputs,
extras, styles and extensions are services of their own, held by one container.
"""
