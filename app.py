"""Diffusion Studio launcher: `python app.py [flags]` (Hugging Face Spaces runs this file as is)."""
import sys

from studio.cli.main import main
from studio.cli.spaces import space_arguments

if __name__ == "__main__":
    sys.exit(main(["serve", *space_arguments(sys.argv[1:])]))
