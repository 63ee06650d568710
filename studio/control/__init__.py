"""Control-image preprocessors and the OpenPose renderer (see edges.py, pose.py)."""
