"""Face restoration files built from random weights of the real architectures, written where A1111 keeps
them (models/GFPGAN, models/Codeformer), for tests.

- The detector is facexlib's RetinaFace ResNet-50 (studio.checkpoints.retinaface) with a random backbone
  and crafted heads: at a 32-pixel detection size its coarsest level has one cell, and only that cell's
  first anchor says "face", with a box of half the image and five landmarks in a face's layout around
  the centre. So the real network, prior boxes, decoding and NMS find exactly one face, where we know it.
- Restorers: a small RestoreFormer (spandrel reads its size from the weights), and the real GFPGAN v1
  (spandrel's fixed 512 architecture, ~87M parameters: slow to build and run on a CPU).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from studio.checkpoints.retinaface import RetinaFace

DETECT_SIZE = 32  # the detection's shortest side in tests: the coarsest level (stride 32) is one cell
# Landmarks in the 32-pixel detection image: eyes, nose, mouth corners around the centre (16, 16).
LANDMARKS_32 = ((14.0, 14.5), (18.0, 14.5), (16.0, 16.5), (14.5, 18.5), (17.5, 18.5))
BOX_32 = 16.0  # the box's side in the detection image


def detector_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = RetinaFace()
    anchor = 256.0  # the coarsest level's first prior (facexlib's min_sizes[2][0]) at DETECT_SIZE
    with torch.no_grad():
        for heads in (model.ClassHead, model.BboxHead, model.LandmarkHead):
            for head in heads:
                head.conv1x1.weight.zero_()
                head.conv1x1.bias.zero_()
        for head in model.ClassHead:  # background everywhere ...
            head.conv1x1.bias.copy_(torch.tensor([12.0, -12.0, 12.0, -12.0]))
        model.ClassHead[2].conv1x1.bias.copy_(torch.tensor([-12.0, 12.0, 12.0, -12.0]))  # ... but one anchor
        size = math.log(BOX_32 / anchor) / 0.2  # box = prior * exp(0.2 * loc)
        model.BboxHead[2].conv1x1.bias[:4].copy_(torch.tensor([0.0, 0.0, size, size]))
        offsets = [(value - 16.0) / (0.1 * anchor) for point in LANDMARKS_32 for value in point]
        model.LandmarkHead[2].conv1x1.bias[:10].copy_(torch.tensor(offsets))
    # As facexlib's file: saved from DataParallel ("module." keys); half precision keeps the file small.
    return {f"module.{key}": value.half() if value.is_floating_point() else value
            for key, value in model.state_dict().items()}


def restoreformer_state(seed: int = 0) -> dict[str, torch.Tensor]:
    from spandrel.architectures.RestoreFormer import RestoreFormer

    torch.manual_seed(seed)
    model = RestoreFormer(n_embed=32, embed_dim=32, ch=32, ch_mult=(1, 1, 1, 1, 1, 1), num_res_blocks=1,
                          z_channels=32, head_size=8)
    return model.state_dict()


def gfpgan_state(seed: int = 0) -> dict[str, torch.Tensor]:
    from spandrel.architectures.GFPGAN import GFPGAN

    torch.manual_seed(seed)
    model = GFPGAN(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None, fix_decoder=False,
                   num_mlp=8, input_is_latent=True, different_w=True, narrow=1, sft_half=True)
    return {key: value.half() if value.is_floating_point() else value for key, value in model.state_dict().items()}


def write(models_dir: Path, folder: str, name: str, state: dict[str, torch.Tensor]) -> Path:
    path = models_dir / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path
