"""The passes of a run: the base pass, then at most one of hires fix or the SDXL refiner."""
