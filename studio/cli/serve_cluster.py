"""`serve --replicas N`: the replicas on Ray Serve, then the UI and API in front of them, until
SIGTERM or Ctrl+C (only this command imports Ray)."""
from __future__ import annotations

from studio.cli.serve import serve
from studio.cluster.launch import start_cluster, stop_cluster
from studio.cluster.options import ClusterOptions
from studio.service.shutdown import ServiceJobs, install_shutdown_handler
from studio.settings import Settings
from studio.web.auth import access_policy


def serve_cluster(settings: Settings, options: ClusterOptions) -> None:
    access_policy(settings)  # an open studio on a public address is refused before Ray starts
    services = start_cluster(settings, options)
    try:
        _, demo, _ = serve(settings, block=False, services=services)
        install_shutdown_handler(ServiceJobs(services.generation), on_exit=lambda: stop_cluster(options))
        demo.block_thread()
    finally:
        stop_cluster(options)
