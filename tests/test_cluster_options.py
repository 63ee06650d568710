"""`serve --replicas` flags and the job board, without starting Ray; the single-machine studio
never imports Ray."""
from __future__ import annotations

import subprocess
import sys

import pytest

from studio.cli.main import build_parser, main
from studio.cluster.board import INTERRUPT, SKIP, JobBoard
from studio.cluster.messages import Replica
from studio.cluster.options import ClusterOptions, cluster_options


def options(*flags: str) -> ClusterOptions | None:
    return cluster_options(build_parser().parse_args(["serve", *flags]))


def test_replicas_flags_give_the_cluster_options():
    assert options() is None  # no --replicas: the single-machine studio
    assert options("--replicas", "2", "--threads", "3") == ClusterOptions(replicas=2, replica_cpus=3)
    scaled = options("--replicas", "2", "--min-replicas", "1", "--max-replicas", "6", "--ray-address", "auto",
                     "--device", "cuda")
    assert (scaled.autoscaling, scaled.most_replicas, scaled.ray_address, scaled.replica_gpus) == (True, 6, "auto", 1.0)


@pytest.mark.parametrize("flags, message", [
    (["--replicas", "0"], "--replicas must be 1 or more"),
    (["--replicas", "4", "--max-replicas", "2"], "--replicas (4) <= --max-replicas (2)"),
    (["--replicas", "1", "--min-replicas", "2", "--max-replicas", "3"], "--min-replicas (2) <= --replicas (1)"),
    (["--ray-address", "auto"], "need --replicas N"),
    (["--max-replicas", "3"], "need --replicas N"),
])
def test_wrong_cluster_flags_are_refused_before_anything_starts(flags, message, capsys):
    assert main(["serve", "--no-browser", *flags]) == 2
    assert message in capsys.readouterr().err


def test_the_single_machine_studio_never_imports_ray():
    code = ("import sys, studio.cli.main, studio.cli.serve, studio.service.container, studio.service.generation, studio.web.mount, studio.cluster.options; "
            "sys.exit('ray' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=300).returncode == 0


def test_the_board_carries_progress_and_stop_requests_to_the_replica_running_a_job():
    board, replica = JobBoard(), Replica("r1", 123, "10.0.0.1", 1)
    board.open("a")
    board.command("a", INTERRUPT)  # while it waits for a replica: the replica is told when it starts
    assert board.start("a", replica) == INTERRUPT
    board.open("b")
    assert board.start("b", replica) is None
    board.command("b", SKIP)
    assert board.report("b", {"step": 1}) == SKIP and board.report("b", {"step": 2}) is None  # a skip is taken once
    board.command("b", INTERRUPT)
    board.command("b", SKIP)  # an interrupt is not replaced by a skip
    assert board.report("b", {"step": 3}) == INTERRUPT
    assert board.start("b", Replica("r2", 456, "10.0.0.2", 1)) == INTERRUPT  # a retry is still stopped
    state = board.close("b")
    assert state.attempts == 2 and state.replica.id == "r2" and state.progress is None
    assert board.report("b", {"step": 4}) is None and "b" not in board.snapshot()


def test_the_flags_make_a_valid_serve_deployment_fixed_or_autoscaled():
    serve = pytest.importorskip("ray.serve")
    from studio.cluster.launch import deployment_options
    from studio.cluster.replica import StudioReplica

    fixed = serve.deployment(StudioReplica).options(**deployment_options(options("--replicas", "3")))
    assert fixed.num_replicas == 3 and fixed.max_ongoing_requests == 1
    scaled = serve.deployment(StudioReplica).options(
        **deployment_options(options("--replicas", "2", "--min-replicas", "1", "--max-replicas", "4")))
    bounds = scaled._deployment_config.autoscaling_config
    assert (bounds.min_replicas, bounds.initial_replicas, bounds.max_replicas) == (1, 2, 4)
