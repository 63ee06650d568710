"""Diffusion Studio launcher: `python app.py [flags]` (Hugging Face Spaces runs this file as is)."""
import os
import sys

from studio.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if os.environ.get("SPACE_ID"):  # on Spaces: listen where the Space expects, never open a browser
        argv = ["--listen", "--no-browser", *argv]
    sys.exit(main(["serve", *argv]))
