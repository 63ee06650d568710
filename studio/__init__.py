"""Diffusion Studio: a local-first browser studio for Stable-Diffusion-class image generation."""

__version__ = "0.1.0"
