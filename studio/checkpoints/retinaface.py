"""RetinaFace (ResNet-50): the face detector A1111's face restoration uses (through facexlib), rebuilt here
so its weights file `detection_Resnet50_Final.pth` loads as it is, without facexlib (which pulls
opencv-python beside our headless OpenCV, and numba).

The module names and shapes follow facexlib's `RetinaFace(network_name="resnet50")` so the state dict
loads strictly; detection follows its `detect_faces` (BGR input minus the mean, prior boxes, decode,
confidence threshold, NMS) and FaceRestoreHelper's `get_face_landmarks_5(resize=640)` as A1111 calls it.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from math import ceil

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.models import resnet50
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops import nms

MIN_SIZES = ((16, 32), (64, 128), (256, 512))
STEPS = (8, 16, 32)
VARIANCE = (0.1, 0.2)
MEAN_BGR = (104.0, 117.0, 123.0)


def _conv_bn(inp: int, oup: int, stride: int = 1, leaky: float = 0.0, kernel: int = 3,
             relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(inp, oup, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(oup)]
    if relu:
        layers.append(nn.LeakyReLU(negative_slope=leaky, inplace=True))
    return nn.Sequential(*layers)


class SSH(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        leaky = 0.1 if channels <= 64 else 0.0
        self.conv3X3 = _conv_bn(channels, channels // 2, relu=False)
        self.conv5X5_1 = _conv_bn(channels, channels // 4, leaky=leaky)
        self.conv5X5_2 = _conv_bn(channels // 4, channels // 4, relu=False)
        self.conv7X7_2 = _conv_bn(channels // 4, channels // 4, leaky=leaky)
        self.conv7x7_3 = _conv_bn(channels // 4, channels // 4, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.conv5X5_1(x)
        second = self.conv7X7_2(first)
        return F.relu(torch.cat([self.conv3X3(x), self.conv5X5_2(first), self.conv7x7_3(second)], dim=1))


class FPN(nn.Module):
    def __init__(self, in_channels: tuple[int, int, int], channels: int) -> None:
        super().__init__()
        leaky = 0.1 if channels <= 64 else 0.0
        self.output1 = _conv_bn(in_channels[0], channels, leaky=leaky, kernel=1)
        self.output2 = _conv_bn(in_channels[1], channels, leaky=leaky, kernel=1)
        self.output3 = _conv_bn(in_channels[2], channels, leaky=leaky, kernel=1)
        self.merge1 = _conv_bn(channels, channels, leaky=leaky)
        self.merge2 = _conv_bn(channels, channels, leaky=leaky)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        out1, out2, out3 = self.output1(features[0]), self.output2(features[1]), self.output3(features[2])
        out2 = self.merge2(out2 + F.interpolate(out3, size=out2.shape[2:], mode="nearest"))
        out1 = self.merge1(out1 + F.interpolate(out2, size=out1.shape[2:], mode="nearest"))
        return [out1, out2, out3]


class _Head(nn.Module):
    """One of facexlib's ClassHead / BboxHead / LandmarkHead: a 1x1 conv, `values` numbers per anchor."""

    def __init__(self, channels: int, values: int, anchors: int = 2) -> None:
        super().__init__()
        self.values = values
        self.conv1x1 = nn.Conv2d(channels, anchors * values, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1x1(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1, self.values)


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the image's pixels
    score: float
    landmarks: np.ndarray  # (5, 2): left eye, right eye, nose, mouth left, mouth right


class RetinaFace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = IntermediateLayerGetter(resnet50(weights=None), {"layer2": 1, "layer3": 2, "layer4": 3})
        self.fpn = FPN((512, 1024, 2048), 256)
        self.ssh1, self.ssh2, self.ssh3 = SSH(256), SSH(256), SSH(256)
        self.ClassHead = nn.ModuleList(_Head(256, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(_Head(256, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(_Head(256, 10) for _ in range(3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fpn = self.fpn(list(self.body(x).values()))
        features = [self.ssh1(fpn[0]), self.ssh2(fpn[1]), self.ssh3(fpn[2])]
        boxes = torch.cat([head(f) for head, f in zip(self.BboxHead, features)], dim=1)
        scores = torch.cat([head(f) for head, f in zip(self.ClassHead, features)], dim=1)
        landmarks = torch.cat([head(f) for head, f in zip(self.LandmarkHead, features)], dim=1)
        return boxes, F.softmax(scores, dim=-1), landmarks


def load_state(model: RetinaFace, state: dict[str, torch.Tensor]) -> RetinaFace:
    """facexlib's file as saved (a DataParallel "module." prefix dropped), strictly."""
    state = {key.removeprefix("module."): value for key, value in state.items()}
    model.load_state_dict(state, strict=True)
    return model.eval()


def priors(height: int, width: int) -> torch.Tensor:
    """facexlib's PriorBox: (cx, cy, w, h) per anchor, relative to the image, in the heads' order."""
    anchors = []
    for step, sizes in zip(STEPS, MIN_SIZES):
        for i, j in product(range(ceil(height / step)), range(ceil(width / step))):
            for size in sizes:
                anchors.append(((j + 0.5) * step / width, (i + 0.5) * step / height, size / width, size / height))
    return torch.tensor(anchors, dtype=torch.float32)


def decode(loc: torch.Tensor, landm: torch.Tensor, anchors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    centres, sizes = anchors[:, :2], anchors[:, 2:]
    boxes = torch.cat((centres + loc[:, :2] * VARIANCE[0] * sizes, sizes * torch.exp(loc[:, 2:] * VARIANCE[1])), 1)
    boxes = torch.cat((boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2), 1)
    points = torch.cat([centres + landm[:, 2 * k:2 * k + 2] * VARIANCE[0] * sizes for k in range(5)], 1)
    return boxes, points


@torch.inference_mode()
def detect(model: RetinaFace, image: Image.Image, threshold: float = 0.97, nms_threshold: float = 0.4,
           resize: int = 640, min_eye_distance: float = 5.0) -> list[Face]:
    """Faces in an RGB image, as A1111 asks facexlib: shortest side scaled to `resize`, score > 0.97,
    faces whose eyes are closer than 5 pixels dropped. Boxes and landmarks in the image's pixels."""
    scale = min(image.size) / resize
    size = (int(image.width / scale), int(image.height / scale))
    scaled = image.convert("RGB").resize(size, Image.Resampling.LANCZOS) if size != image.size else image.convert("RGB")
    bgr = np.asarray(scaled, dtype=np.float32)[:, :, ::-1] - np.array(MEAN_BGR, dtype=np.float32)
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    pixels = torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1)))[None].to(device, dtype)
    loc, conf, landm = model(pixels)
    height, width = pixels.shape[2:]
    boxes, points = decode(loc[0].float().cpu(), landm[0].float().cpu(), priors(height, width))
    boxes = boxes * torch.tensor([width, height] * 2) * scale
    points = points * torch.tensor([width, height] * 5) * scale
    scores = conf[0, :, 1].float().cpu()
    keep = scores > threshold
    boxes, points, scores = boxes[keep], points[keep], scores[keep]
    order = nms(boxes, scores, nms_threshold)
    faces = []
    for index in order.tolist():
        landmarks = points[index].reshape(5, 2).numpy().astype(np.float64)
        if np.linalg.norm(landmarks[0] - landmarks[1]) < min_eye_distance:
            continue
        faces.append(Face(tuple(float(v) for v in boxes[index]), float(scores[index]), landmarks))
    return faces
