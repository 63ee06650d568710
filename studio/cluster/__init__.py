"""Replicas on Ray Serve: `python -m studio serve --replicas N [--ray-address ADDR]`.

The engine runs as a Ray Serve deployment (studio.cluster.replica), one model per replica; the
Gradio UI and the A1111 API stay in this process and reach the replicas through
the services container of `studio.cluster.services` (its generation, model and Extras services run
remotely; the others are the single machine's).
Outputs are written here, by the ingress, once a job has come back: a replica that dies mid-job
leaves nothing behind, and the job is run again on another replica.

`ray[serve]` is an optional extra (`pip install -e ".[cluster]"`): nothing in this package's
__init__ imports it, and the single-machine studio never imports this package.
"""
