"""Launch the studio: check who may reach it, load the model, build the UI, serve UI and API together."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.checkpoints.devices import configure_threads
from studio.records.storage import remove_stale_temps
from studio.service.container import Services, build_services
from studio.service.shutdown import ServiceJobs, install_shutdown_handler
from studio.service.users import check_user_names, user_names
from studio.settings import Settings

MAX_UPLOAD = "64mb"  # Gradio uploads; the HTTP API has the same limit on bodies


def serve(settings: Settings, block: bool = True, services: Services | None = None) -> Any:
    """Load the model, build the UI, launch Gradio with the HTTP API mounted before the server
    accepts connections (unless settings.api is off). Returns (services, demo, app) when block=False.
    `services`: a container made elsewhere and ready (studio.cluster's, whose jobs run on Ray replicas)."""
    from studio.ui.build import CSS, HEAD, build_ui
    from studio.web.auth import access_policy
    from studio.web.gate import gate_middleware
    from studio.web.mount import mounting_lifespan
    from studio.web.no_fetch import refuse_url_fetches
    from studio.web.startup_check import patient_launch_check

    policy = access_policy(settings)  # before any work: an open studio on a public address is refused
    check_user_names(user_names(settings))  # several users: each name becomes an outputs folder
    if services is None:
        configure_threads(settings.threads)
        services = build_services(settings)
        if block:  # the process is ours: SIGTERM stops after the step, keeps finished images, exits
            install_shutdown_handler(ServiceJobs(services.generation))
        services.models.current()  # load before serving: the first click should not wait for it
    remove_stale_temps(settings.outputs_dir)  # `.saving-*` files a crash left (over a minute old)
    refuse_url_fetches()  # no request makes Gradio download a URL (uploads, examples, queue data)
    demo = build_ui(services)
    hide_gradio_endpoints(demo)
    demo.queue(default_concurrency_limit=services.generation.parallel_jobs)
    app_kwargs: dict[str, Any] = {"docs_url": None, "redoc_url": None, "openapi_url": None,
                                  "lifespan": mounting_lifespan(services, policy, api=settings.api),
                                  "middleware": gate_middleware(policy)}  # credentials and body size before any read
    with patient_launch_check():  # a busy machine answers slowly; Gradio's own check gives up after 3 s
        app, local_url, share_url = demo.launch(
            server_name=settings.host,
            server_port=settings.port,
            share=settings.share,
            auth=list(policy.ui) or None,
            inbrowser=settings.open_browser,
            prevent_thread_lock=True,
            allowed_paths=[str(Path(settings.outputs_dir).resolve())],
            max_file_size=MAX_UPLOAD,
            head=HEAD,
            css=CSS,
            show_error=False,  # unexpected exceptions show as a bare error, never their internals; gr.Error always shows
            app_kwargs=app_kwargs,
        )
    print(f"Diffusion Studio running on {local_url}" + (f" (share: {share_url})" if share_url else ""), flush=True)
    if block:
        demo.block_thread()
    return services, demo, app


def hide_gradio_endpoints(demo: Any) -> None:
    """The UI's event handlers stay callable by the page but are left out of Gradio's endpoint
    description, which Gradio embeds even in the login page: the studio's API is /sdapi/v1 (see /docs)."""
    for fn in demo.fns.values():
        if fn.api_visibility == "public":
            fn.api_visibility = "undocumented"
