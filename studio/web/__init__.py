"""The HTTP layer: A1111-compatible routes by resource, mounted beside the Gradio app.

One module per resource (generation, options/models, png-info/reproduce, ControlNet, progress,
docs), each a `routes(router, services)` function over the services container
(`studio.service.container.Services`) and nothing else; `studio.web.mount` assembles them.
No module here imports `mount`, the engine, torch or diffusers (import-linter checks it).
"""
