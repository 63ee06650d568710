#!/usr/bin/env bash
# The benchmark suite on a CUDA GPU, in under 5 minutes (for the day a GPU is available).
#
#   bash benchmarks/gpu_check.sh            # from the project root, in the project's venv
#
# 1. checks that torch sees CUDA and what the studio picks there (fp16, SDPA attention);
# 2. the CUDA-path unit tests (offload selection, fp32 VAE retry on NaN);
# 3. `python -m benchmarks.run --quick --no-docs` on the GPU (results in benchmarks/results/gpu/),
#    cut off at 5 minutes; on a GPU the SD1.5-size 256² group takes seconds per image, so it fits.
# On CUDA, read the wall-time ratios: CPU time does not see the GPU's work.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} HF_HUB_OFFLINE=1

"$PYTHON" - <<'PY'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: torch sees no CUDA device (torch %s, built for CUDA %s)" % (torch.__version__, torch.version.cuda))
from studio.checkpoints.devices import pick_device, pick_dtype
device = pick_device("auto")
print("device:", torch.cuda.get_device_name(device), "| auto dtype:", pick_dtype("auto", device, 860_000_000),
      "| SDPA flash/mem-efficient:", torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.mem_efficient_sdp_enabled())
PY
"$PYTHON" -m pytest -q tests/test_cuda_path.py
timeout 300 "$PYTHON" -m benchmarks.run --quick --no-docs --results-dir benchmarks/results/gpu
