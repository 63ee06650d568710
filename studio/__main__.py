import sys

from studio.cli.startup import prepare_environment

prepare_environment()  # before anything imports torch (OpenMP reads it once)

from studio.cli.main import main  # noqa: E402

sys.exit(main())
