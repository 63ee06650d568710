"""The HTTP layer: A1111-compatible routes by resource, mounted beside the Gradio app.

One module per resource (generation, options/models, png-info/reproduce, ControlNet, progress,
docs), each a `routes(router, studio)` function over the `studio.service.facade.StudioFacade`;
`studio.web.mount` assembles them. No module here imports `mount` or the Studio class.
"""
