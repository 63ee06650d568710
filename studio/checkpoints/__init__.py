"""Checkpoints: finding and loading models.

Discovery of the A1111-style models/ tree (titles, hashes), single-file checkpoints with the
bundled configs (configs/), parameterization (eps / v), device, dtype, offload and compile
choices, and upscaler files. What is loaded is handed to the generation layer; nothing here runs
a sampler.
"""
