"""The command line: `python -m studio` / `python app.py` (serve, generate, batches, listings)."""
