"""Diffusion Studio launcher: `python app.py [flags]` (Hugging Face Spaces runs this file as is)."""
import sys

from studio.cli.startup import prepare_environment

prepare_environment()  # OMP_WAIT_POLICY=PASSIVE before anything imports torch (see studio/cli/startup.py)

from studio.cli.main import main  # noqa: E402
from studio.cli.spaces import space_arguments  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["serve", *space_arguments(sys.argv[1:])]))
