"""/controlnet/detect with an openpose module answers `poses` as sd-webui-controlnet does: one OpenPose
JSON per image (people with pose_keypoints_2d as fractions of the canvas, canvas_width/height)."""
from __future__ import annotations

import base64
import io

from studio.control.aux import import_aux
from studio.control.pose import KEYPOINT_NAMES, people_as_openpose_json
from tests.support.served import api_client
from tests.test_controlnet_detectors import photo, weights_file


def test_people_are_written_as_sd_webui_controlnet_writes_them():
    body = import_aux("controlnet_aux.open_pose.body")
    PoseResult = import_aux("controlnet_aux.open_pose").PoseResult
    points = [body.Keypoint(0.25, 0.5)] + [None] * (len(KEYPOINT_NAMES) - 1)
    person = PoseResult(body.BodyResult(points, 1.0, 1), None, None, None)
    data = people_as_openpose_json([person], 64, 48)
    assert data["canvas_width"] == 64 and data["canvas_height"] == 48
    [one] = data["people"]
    assert one["pose_keypoints_2d"][:6] == [0.25, 0.5, 1.0, 0.0, 0.0, 0.0]
    assert len(one["pose_keypoints_2d"]) == 3 * len(KEYPOINT_NAMES)
    assert one["face_keypoints_2d"] is None and one["hand_left_keypoints_2d"] is None


def test_detect_answers_poses_for_openpose_only(settings):
    buffer = io.BytesIO()
    photo().save(buffer, format="PNG")
    image = base64.b64encode(buffer.getvalue()).decode()
    weights_file("openpose", settings.models_dir / "ControlNet" / "annotators")
    with api_client(settings) as client:
        answer = client.post("/controlnet/detect", json={"controlnet_module": "openpose", "controlnet_processor_res": 64,
                                                         "controlnet_input_images": [image, image]})
        assert answer.status_code == 200, answer.text
        poses = answer.json()["poses"]
        assert len(poses) == 2 and len(answer.json()["images"]) == 2
        for pose in poses:
            assert (pose["canvas_width"], pose["canvas_height"]) == (64, 64) and isinstance(pose["people"], list)
            for person in pose["people"]:
                assert len(person["pose_keypoints_2d"]) == 3 * len(KEYPOINT_NAMES)
                assert all(0 <= value <= 1 for value in person["pose_keypoints_2d"])
        canny = client.post("/controlnet/detect", json={"controlnet_module": "canny", "controlnet_input_images": [image]})
        assert canny.status_code == 200 and "poses" not in canny.json()
