"""`serve` flags for running the engine on Ray Serve replicas (parsed here: nothing imports Ray)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class ClusterOptions:
    replicas: int  # replicas at start (with autoscaling: the initial count)
    min_replicas: int | None = None  # autoscaling bounds: both given, or neither (fixed count)
    max_replicas: int | None = None
    ray_address: str | None = None  # None: start a local Ray cluster on this machine
    replica_cpus: int = 1  # CPUs each replica reserves; also its torch threads unless --threads is given
    replica_gpus: float = 0.0  # GPUs each replica reserves (1: one replica per GPU)
    object_store_mb: int = 256  # the local cluster's object store (images travel through it)

    @property
    def autoscaling(self) -> bool:
        return self.min_replicas is not None or self.max_replicas is not None

    @property
    def most_replicas(self) -> int:
        return self.max_replicas if self.max_replicas is not None else self.replicas

    def check(self) -> "ClusterOptions":
        """A short error naming the flag, before any cluster is started."""
        if self.replicas < 1:
            raise ValueError("--replicas must be 1 or more")
        low = self.min_replicas if self.min_replicas is not None else min(1, self.replicas)
        high = self.most_replicas
        if self.autoscaling and not 0 <= low <= self.replicas <= high:
            raise ValueError(f"autoscaling bounds: need --min-replicas ({low}) <= --replicas ({self.replicas}) "
                             f"<= --max-replicas ({high})")
        if self.replica_cpus < 1:
            raise ValueError("--replica-cpus must be 1 or more")
        if self.replica_gpus < 0:
            raise ValueError("--replica-gpus must be 0 or more")
        return self


def add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scale out with Ray Serve (needs pip install -e \".[cluster]\")")
    group.add_argument("--replicas", type=int, default=None,
                       help="run the engine as N Ray Serve replicas (one model each); "
                            "the UI and API route jobs to them")
    group.add_argument("--min-replicas", type=int, default=None,
                       help="autoscaling: fewest replicas (with --max-replicas)")
    group.add_argument("--max-replicas", type=int, default=None, help="autoscaling: most replicas")
    group.add_argument("--ray-address", default=None,
                       help="join a running Ray cluster (e.g. ray://head:10001 or auto); default: a local one")
    group.add_argument("--replica-cpus", type=int, default=None,
                       help="CPUs per replica, also its torch threads (default: --threads, else 1)")
    group.add_argument("--replica-gpus", type=float, default=None,
                       help="GPUs per replica (default: 1 with --device cuda, else 0)")


def cluster_options(args: argparse.Namespace) -> ClusterOptions | None:
    """The cluster the flags ask for; None for the single-machine studio (no --replicas)."""
    if getattr(args, "replicas", None) is None:
        if getattr(args, "ray_address", None) or getattr(args, "min_replicas", None) is not None \
                or getattr(args, "max_replicas", None) is not None:
            raise ValueError("--ray-address, --min-replicas and --max-replicas need --replicas N")
        return None
    gpus = args.replica_gpus if args.replica_gpus is not None else (1.0 if str(args.device).startswith("cuda") else 0.0)
    return ClusterOptions(
        replicas=args.replicas, min_replicas=args.min_replicas, max_replicas=args.max_replicas,
        ray_address=args.ray_address, replica_cpus=args.replica_cpus or args.threads or 1, replica_gpus=gpus,
    ).check()
