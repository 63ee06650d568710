"""Start the replicas on Ray Serve and serve the UI and API in front of them.

`python -m studio serve --replicas N` comes here (only then is Ray imported). Without
--ray-address a local Ray cluster is started on this machine with a small object store and
no dashboard; with one, the replicas are deployed onto that cluster and removed again when the
studio exits.
"""
from __future__ import annotations

import logging
import os
from typing import Any

import ray
from ray import serve

from studio.cluster.board import JobBoard
from studio.cluster.client import ClusterClient
from studio.cluster.options import ClusterOptions
from studio.cluster.replica import StudioReplica
from studio.cluster.services import connect_services
from studio.service.container import Services
from studio.settings import Settings

APP_NAME = "diffusion-studio"
OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "PYTHONPATH")  # passed on to every replica

log = logging.getLogger(__name__)


def start_cluster(settings: Settings, options: ClusterOptions) -> Services:
    """Ray up, replicas deployed and ready (each with the start-up model loaded), the services over them."""
    connect_ray(options)
    serve.start(proxy_location="Disabled")  # the studio's own server is the ingress: no Serve HTTP proxy
    board = ray.remote(num_cpus=0)(JobBoard).remote()
    deployment = serve.deployment(StudioReplica).options(**deployment_options(options))
    handle = serve.run(deployment.bind(replica_settings(settings), replica_threads(settings, options), board),
                       name=APP_NAME, route_prefix=None)
    services = connect_services(settings, ClusterClient(handle, board, APP_NAME), capacity=options.most_replicas)
    services.models.facts()  # the start-up model's facts now: the first page and /options answer at once
    return services


def connect_ray(options: ClusterOptions) -> None:
    if options.ray_address:
        ray.init(address=options.ray_address, logging_level=logging.WARNING)
        return
    ray.init(num_cpus=max(os.cpu_count() or 1, options.most_replicas * options.replica_cpus),
             num_gpus=None if options.replica_gpus else 0, object_store_memory=options.object_store_mb * 1024 ** 2,
             include_dashboard=False, logging_level=logging.WARNING)


def deployment_options(options: ClusterOptions) -> dict[str, Any]:
    """One request at a time per replica (the engine runs one job at a time anyway): the router
    keeps the rest and gives each to the first replica that is free."""
    env = {name: os.environ[name] for name in OFFLINE_ENV if name in os.environ}
    values: dict[str, Any] = {
        "max_ongoing_requests": 1,
        "max_queued_requests": -1,
        "ray_actor_options": {"num_cpus": options.replica_cpus, "num_gpus": options.replica_gpus,
                              "runtime_env": {"env_vars": env}},
        "graceful_shutdown_timeout_s": 30,
    }
    if options.autoscaling:
        values["autoscaling_config"] = {
            "min_replicas": options.min_replicas if options.min_replicas is not None else min(1, options.replicas),
            "max_replicas": options.most_replicas, "initial_replicas": options.replicas,
            "target_ongoing_requests": 1,
        }
    else:
        values["num_replicas"] = options.replicas
    return values


def replica_settings(settings: Settings) -> Settings:
    """What a replica gets: no credentials (it serves no one directly) and a scratch outputs
    folder (it never writes into outputs/: the ingress saves what comes back)."""
    return settings.replace(auth=None, api_auth=None, outputs_dir=settings.cache_dir / "replica-scratch",
                            open_browser=False)


def replica_threads(settings: Settings, options: ClusterOptions) -> int:
    """Torch threads of every replica, set explicitly (and recorded in each image's recipe)."""
    return settings.threads or options.replica_cpus


def stop_cluster(options: ClusterOptions) -> None:
    """Remove the replicas; a local Ray cluster goes with this process. Safe to call twice
    (Serve's calls would otherwise start a fresh Ray to shut down)."""
    if not ray.is_initialized():
        return
    try:
        if options.ray_address:
            serve.delete(APP_NAME)
        else:
            serve.shutdown()
    except Exception as error:  # the cluster may already be gone; exiting must not fail on it
        log.warning("stopping the replicas: %s", error)
    ray.shutdown()
