"""Cropping a detected face to the restorer's aligned 512x512 square and pasting the restored face back
under a feathered mask: facexlib's FaceRestoreHelper (align_warp_face, paste_faces_to_input_image with
its square mask) as A1111 runs it at upscale factor 1, on numpy RGB arrays.

A1111 also softens the mask with a face-parsing network (parsing_parsenet.pth); here the square mask
facexlib falls back to is used: the paste is eroded inside the aligned square and blurred at its edge.
"""
from __future__ import annotations

import cv2
import numpy as np

FACE_SIZE = 512
# facexlib's 5-point template for a 512 face (eyes, nose tip, mouth corners): FFHQ's alignment.
TEMPLATE = np.array([[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
                     [201.26117, 371.41043], [313.08905, 371.15118]], dtype=np.float64)
BORDER_RGB = (132, 133, 135)  # facexlib's grey border (135, 133, 132) in BGR


def alignment(landmarks: np.ndarray) -> np.ndarray:
    """The 2x3 similarity transform taking the face's 5 landmarks onto the template."""
    matrix = cv2.estimateAffinePartial2D(np.asarray(landmarks, dtype=np.float64), TEMPLATE, method=cv2.LMEDS)[0]
    if matrix is None:  # degenerate landmarks (all on one point): no face to align
        raise ValueError("these face landmarks cannot be aligned")
    return matrix


def crop(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The aligned face, FACE_SIZE square, grey where it leaves the picture."""
    return cv2.warpAffine(image, matrix, (FACE_SIZE, FACE_SIZE), borderMode=cv2.BORDER_CONSTANT,
                          borderValue=BORDER_RGB)


def paste(image: np.ndarray, face: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """`face` (the restored crop) warped back into `image` (uint8 HxWx3) under a feathered square mask."""
    height, width = image.shape[:2]
    inverse = cv2.invertAffineTransform(matrix)
    restored = cv2.warpAffine(face, inverse, (width, height)).astype(np.float32)
    square = cv2.warpAffine(np.ones((FACE_SIZE, FACE_SIZE), dtype=np.float32), inverse, (width, height))
    mask = cv2.erode(square, np.ones((2, 2), np.uint8))
    restored *= mask[:, :, None]
    edge = int(float(mask.sum()) ** 0.5) // 20  # feather over 1/20 of the face's side, as facexlib
    if edge > 0:
        mask = cv2.erode(mask, np.ones((edge * 2, edge * 2), np.uint8))
    # facexlib's blur may reach a pixel past the square; kept inside it, nothing outside the face changes
    soft = (cv2.GaussianBlur(mask, (edge * 2 + 1, edge * 2 + 1), 0) * square)[:, :, None]
    blended = soft * restored + (1 - soft) * image.astype(np.float32)
    return np.clip(blended, 0, 255).astype(np.uint8)


def face_region(shape: tuple[int, ...], matrix: np.ndarray) -> np.ndarray:
    """Where a paste may change pixels: the aligned square mapped back (a bool HxW mask)."""
    inverse = cv2.invertAffineTransform(matrix)
    square = cv2.warpAffine(np.ones((FACE_SIZE, FACE_SIZE), dtype=np.float32), inverse, (shape[1], shape[0]))
    return square > 0
