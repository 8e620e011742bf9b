"""Synthetic data: determinism, resume, ground truth consistency, sensor model statistics."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from handrgbd.camera import CameraIntrinsics
from handrgbd.recording import Recording
from synth.backgrounds import collage_texture, photo_textures
from synth.generator import SynthConfig, generate, make_plans
from synth.sensor import SensorModel, surface_cosine

SMALL = SynthConfig(size=96)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "set"
    generate(out, 6, seed=3, config=SMALL, workers=1, progress=False)
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_recording_has_everything(small_set):
    rec = Recording(small_set)
    assert len(rec) == 6 and rec.has_rgb and rec.has_depth and rec.has_joints and rec.has_poses
    frame = rec[2]
    assert frame.rgb.shape == (96, 96, 3) and frame.depth_mm.shape == (96, 96)
    assert frame.mask.any() and frame.joints_mm.shape == (21, 3) and frame.pose.shape == (27,)
    assert 400 <= np.linalg.norm(frame.pose[:3]) <= 1300  # hands at 400-1000 mm (depth), a bit off-axis


def test_deterministic_whatever_the_worker_count(small_set, tmp_path):
    other = tmp_path / "two_workers"
    generate(other, 6, seed=3, config=SMALL, workers=2, progress=False)
    assert _files(other) == _files(small_set)


def test_resume_renders_only_missing_frames(small_set, tmp_path):
    import shutil

    copy = tmp_path / "resumed"
    shutil.copytree(small_set, copy)
    (copy / "rgb" / "000004.png").unlink()
    (copy / "depth" / "000001.png").unlink()
    (copy / "joints.npy").unlink()
    stats = generate(copy, 6, seed=3, config=SMALL, workers=1, progress=False)
    assert stats["rendered"] == 2 and stats["skipped"] == 4
    assert _files(copy) == _files(small_set)


def test_other_settings_refuse_to_mix(small_set):
    with pytest.raises(ValueError, match="other settings"):
        generate(small_set, 6, seed=4, config=SMALL, progress=False)


def test_joints_project_inside_the_mask(small_set):
    import cv2

    rec = Recording(small_set)
    inside = total = 0
    for frame in rec:
        uv = np.round(frame.camera.project(frame.joints_mm)).astype(int)
        grown = cv2.dilate(frame.mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        ok = (uv[:, 0] >= 0) & (uv[:, 0] < 96) & (uv[:, 1] >= 0) & (uv[:, 1] < 96)
        total += ok.sum()
        inside += grown[uv[ok, 1], uv[ok, 0]].sum()
    # joints hidden behind another object still project onto the hand's silhouette; a few may
    # fall on an occluder (second hand, clutter): allow 10%
    assert inside >= 0.9 * total


def test_depth_at_mask_pixels_is_the_renderers(small_set, gl_context):
    """The clean depth at hand pixels is the skinned mesh's depth; the sensor depth stays near it."""
    from renderer.mesh import Mesh, MeshRenderer
    from synth.libhand import LibHandModel

    rec = Recording(small_set)
    frame = rec[0]
    plans = make_plans(SMALL, 3, 6)
    plan = plans[0]
    model = LibHandModel(plan.side)
    posed = model.pose(plan.params, plan.hand_length_mm)
    with MeshRenderer(context=gl_context, near_mm=50.0, far_mm=20000.0) as r:
        alone = r.render([(r.upload(Mesh(posed.vertices, model.hand_faces, posed.normals)), np.eye(4))], plan.camera)
    visible = frame.mask & alone.mask
    assert visible.sum() > 100
    np.testing.assert_allclose(frame.depth_gt_mm[visible], alone.depth_mm[visible], atol=0.51)  # 1 mm PNG units
    measured = frame.depth_mm[visible]
    valid = measured > 0
    assert valid.mean() > 0.8
    err = measured[valid] - frame.depth_gt_mm[visible][valid]
    assert abs(np.median(err)) < 2.0 and np.percentile(np.abs(err), 90) < 15.0


@pytest.mark.parametrize("z", [500.0, 1000.0])
def test_sensor_noise_statistics(z):
    cam = CameraIntrinsics(500.0, 500.0, 63.5, 63.5, 128, 128)
    model = SensorModel()
    wall = np.full((128, 128), z)
    rng = np.random.default_rng(0)
    noisy = model.apply(wall, cam, rng)
    valid = noisy > 0
    assert valid.mean() > 0.99
    inner = noisy[8:-8, 8:-8][valid[8:-8, 8:-8]] - z
    cos = surface_cosine(wall, cam)[8:-8, 8:-8].mean()
    expected = math.sqrt(float(model.sigma_mm(z, cos)) ** 2 + 1 / 12)  # + 1 mm quantisation
    assert abs(inner.mean()) < 0.1
    assert inner.std() == pytest.approx(expected, rel=0.1)
    # documented: about 1.4 mm at 0.5 m and 2.5 mm at 1 m facing the camera
    assert model.sigma_mm(500.0) == pytest.approx(1.375) and model.sigma_mm(1000.0) == pytest.approx(2.5)


def test_sensor_flying_pixels_and_grazing_dropouts():
    cam = CameraIntrinsics(300.0, 300.0, 31.5, 31.5, 64, 64)
    depth = np.full((64, 64), 1500.0)
    depth[:, :32] = 600.0  # a step edge
    noisy = SensorModel(sigma0_mm=0.0, sigma_k_mm_per_m2=0.0).apply(depth, cam, np.random.default_rng(1))
    edge = noisy[:, 31]
    between = (edge > 650) & (edge < 1450)
    assert 0.2 < between.mean() < 0.8  # flying pixels: about flying_prob of the edge pixels
    # a plane seen at 85 degrees incidence loses most of its pixels
    a = math.radians(85)
    n = np.array([math.sin(a), 0.0, -math.cos(a)])  # 85 degrees from the optical axis
    jj, ii = np.meshgrid(np.arange(64), np.arange(64))
    rays = np.stack([(jj - 31.5) / 300.0, (ii - 31.5) / 300.0, np.ones((64, 64))], -1)
    slanted = (n @ [0.0, 0.0, 600.0]) / (rays @ n)
    slanted[(slanted < 0) | (slanted > 3000)] = 0.0
    assert (slanted > 0).mean() > 0.4
    dropped = (SensorModel().apply(slanted, cam, np.random.default_rng(2)) == 0) & (slanted > 0)
    assert dropped.sum() > 0.5 * (slanted > 0).sum()


def test_splits_use_disjoint_backgrounds_and_skin_tones():
    names = [{t.tobytes()[:4096] for t in photo_textures(s)} for s in ("train", "val", "test")]
    assert not (names[0] & names[1]) and not (names[0] & names[2]) and not (names[1] & names[2])
    tints = {s: np.array([p.appearance.skin_tint for p in make_plans(SynthConfig(size=64, split=s), 0, 40)])
             for s in ("train", "test")}
    # the red channel orders skin tones: the test split's tones are not the training split's
    train_red, test_red = tints["train"][:, 0], tints["test"][:, 0]
    assert min(np.abs(t - train_red).min() for t in test_red) > 0.0


def test_sequences_are_smooth_with_a_fixed_camera():
    config = SynthConfig(size=128, sequence=True, split="test")
    plans = make_plans(config, 5, 60)
    assert len({p.camera for p in plans}) == 1
    from tracker.kinematics import HandModel

    joints = HandModel(plans[0].side, plans[0].hand_length_mm).joints(np.stack([p.params for p in plans]))
    step = np.linalg.norm(np.diff(joints, axis=0), axis=-1).max(axis=1)  # mm per frame at 30 fps
    assert step.max() < 25.0  # < 0.75 m/s for every joint


def test_bad_configs():
    with pytest.raises(ValueError, match="split"):
        SynthConfig(split="holdout")
    with pytest.raises(ValueError, match="distance_mm"):
        SynthConfig(distance_mm=(900.0, 400.0))
    with pytest.raises(ValueError, match="frames"):
        generate("/nonexistent/never", 0, 1, progress=False)
    with pytest.raises(ValueError, match="wide_crop_prob"):
        SynthConfig(wide_crop_prob=1.5)
    with pytest.raises(ValueError, match="real_pose_fraction"):
        SynthConfig(real_pose_fraction=-0.1)
    with pytest.raises(ValueError, match="collage_prob"):
        SynthConfig(collage_prob=1.5)


def _hand_extent_in_crop(config: SynthConfig, n: int = 40) -> np.ndarray:
    """Projected joints' extent over the crop side, per planned frame."""
    from synth.generator import plan_frame
    from tracker.kinematics import HandModel

    out = []
    for i in range(n):
        plan = plan_frame(config, 11, i, np.array([0.6, 0.45, 0.35]))
        uv = plan.camera.project(HandModel(plan.side, plan.hand_length_mm).joints(plan.params)[0])
        out.append((uv.max(0) - uv.min(0)).max() / plan.camera.width)
    return np.array(out)


def test_wide_crops_show_a_smaller_hand():
    close = _hand_extent_in_crop(SynthConfig(wide_crop_prob=0.0))
    wide = _hand_extent_in_crop(SynthConfig(wide_crop_prob=1.0))
    # joints span less than the padded box, so the extent is below 1 / scale
    assert close.min() > 0.4 and np.all(wide < 1 / 1.6 + 1e-6) and np.median(wide) < 0.75 * np.median(close)


def test_big_clutter_in_front_of_a_near_wall_plans():
    # train split, seed 0, frame 2329: a big box whose nearest allowed depth is past the wall
    # used to raise "high - low < 0" in numpy
    from synth.generator import plan_frame

    plan = plan_frame(SynthConfig(), 0, 2329, np.array([0.6, 0.45, 0.35]))
    assert all(np.isfinite(p.pose).all() for p in plan.props)


def test_collage_texture_layers_shapes_over_the_base():
    base = np.full((64, 64, 3), 128, np.uint8)
    a = collage_texture(np.random.default_rng(5), base, (), size=128)
    assert a.shape == (128, 128, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, collage_texture(np.random.default_rng(5), base, (), size=128))
    skin = []
    for seed in range(12):
        c = collage_texture(np.random.default_rng(seed), base, (), size=128).astype(int)
        covered = np.abs(c - 128).max(-1) > 12  # shapes over the flat grey base (shading ramps included)
        assert 0.02 < covered.mean() < 1.0
        r, g, b = c[..., 0], c[..., 1], c[..., 2]
        skin.append(((r > 90) & (g > 0.5 * r) & (g < 0.9 * r) & (b < 0.97 * g) & (b > 0.5 * g)).mean())
    assert np.mean(skin) > 0.02  # skin-like distractors are common


def test_collage_backgrounds_change_only_the_background(gl_context):
    """collage_prob has its own random stream: hand, camera and scene are those of the plain plan."""
    from synth.generator import FrameRenderer

    plain = make_plans(SynthConfig(size=96, collage_prob=0.0), 3, 40)
    mixed = make_plans(SynthConfig(size=96, collage_prob=0.5), 3, 40)
    assert all(p.appearance.collage == -1 for p in plain)
    assert 8 <= sum(m.appearance.collage >= 0 for m in mixed) <= 32
    for p, m in zip(plain, mixed):
        np.testing.assert_array_equal(p.params, m.params)
        np.testing.assert_array_equal(p.appearance.skin_tint, m.appearance.skin_tint)
        assert p.camera == m.camera and p.appearance.background == m.appearance.background
    i = next(k for k, m in enumerate(mixed) if m.appearance.collage >= 0)
    with FrameRenderer(SynthConfig(size=96), context=gl_context) as r:
        rgb0, _, gt0, mask0 = r.render(plain[i], np.random.default_rng(0))
        rgb1, _, gt1, mask1 = r.render(mixed[i], np.random.default_rng(0))
    np.testing.assert_array_equal(mask0, mask1)
    np.testing.assert_array_equal(gt0, gt1)
    import cv2

    inner = cv2.erode(mask0.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0  # away from the blurred edge
    assert inner.sum() > 50
    np.testing.assert_array_equal(rgb0[inner], rgb1[inner])
    assert np.abs(rgb0.astype(int) - rgb1)[~mask0].mean() > 5  # the background is not the plain one


def test_motion_blur_averages_the_exposure_and_keeps_the_frames_instant(tmp_path):
    import cv2

    base = SynthConfig(size=96, sequence=True, split="test", keyframe_every=4)
    generate(tmp_path / "sharp", 6, seed=2, config=base, progress=False)
    generate(tmp_path / "blur", 6, seed=2, config=SynthConfig(**{**base.__dict__, "motion_blur": 1.0}), progress=False)
    generate(tmp_path / "tiny", 6, seed=2, config=SynthConfig(**{**base.__dict__, "motion_blur": 1e-6}), progress=False)
    sharp, blur, tiny = (Recording(tmp_path / n) for n in ("sharp", "blur", "tiny"))
    np.testing.assert_array_equal(sharp.joints_mm, blur.joints_mm)  # the frame's own instant
    plans = make_plans(SynthConfig(**{**base.__dict__, "motion_blur": 1.0}), 2, 6)
    assert all(len(p.exposure) == 4 for p in plans)  # MOTION_BLUR_SAMPLES - 1 other instants
    assert np.abs(plans[3].exposure[0].params - plans[3].params).max() > 0  # they differ from the frame's
    for i in range(1, 6):
        a, b, c = sharp[i], blur[i], tiny[i]
        np.testing.assert_array_equal(a.depth_mm, b.depth_mm)
        np.testing.assert_array_equal(a.mask, b.mask)
        assert np.abs(a.rgb.astype(int) - c.rgb).max() <= 1  # a vanishing exposure: the sharp frame (rounding)
        diff = np.abs(a.rgb.astype(int) - b.rgb).max(axis=2) > 2
        assert diff.sum() > 20  # the moving hand is smeared ...
        before, after = sharp[i - 1].depth_gt_mm, sharp[min(i + 1, 5)].depth_gt_mm
        moved = (np.abs(before - a.depth_gt_mm) > 0.5) | (np.abs(after - a.depth_gt_mm) > 0.5)  # hand, arm, props
        moving = cv2.dilate(moved.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)  # paths between them
        assert not (diff & ~moving).any()  # ... and nothing where the scene holds still changes
    plain = SynthConfig(size=96, sequence=True)
    assert "motion_blur" not in plain.to_json()  # folders made before the option still resume
    with pytest.raises(ValueError, match="motion_blur must be in"):
        SynthConfig(sequence=True, motion_blur=1.5)


def test_independent_frames_blur_along_a_random_motion_of_the_hand(tmp_path):
    from synth.generator import BLUR_SPEED_MM_S, BLUR_SPIN_RAD_S, FRAME_RATE_HZ, MOTION_BLUR_SAMPLES

    base = SynthConfig(size=96, split="test", scenario="object")
    blurred = SynthConfig(**{**base.__dict__, "motion_blur": 1.0})
    generate(tmp_path / "sharp", 3, seed=4, config=base, progress=False)
    generate(tmp_path / "blur", 3, seed=4, config=blurred, progress=False)
    sharp, blur = Recording(tmp_path / "sharp"), Recording(tmp_path / "blur")
    np.testing.assert_array_equal(sharp.joints_mm, blur.joints_mm)  # the frame's own instant
    for plan, sharp_plan in zip(make_plans(blurred, 4, 3), make_plans(base, 4, 3)):
        np.testing.assert_array_equal(plan.params, sharp_plan.params)  # the frame's instant: the sharp plan
        assert not sharp_plan.exposure and len(plan.exposure) == MOTION_BLUR_SAMPLES - 1
        first, last = plan.exposure[0], plan.exposure[-1]  # the exposure's ends, 1/30 s apart
        speed = np.linalg.norm(last.params[:3] - first.params[:3]) * FRAME_RATE_HZ  # mm/s
        assert BLUR_SPEED_MM_S[0] - 1e-6 <= speed <= BLUR_SPEED_MM_S[1] + 1e-6
        turn = 2 * np.arccos(min(1.0, abs(float(first.params[3:7] @ last.params[3:7])))) * FRAME_RATE_HZ  # rad/s
        assert turn <= BLUR_SPIN_RAD_S[1] + 1e-6
        np.testing.assert_array_equal(first.params[7:], plan.params[7:])  # the fingers hold still
        held = [k for k, p in enumerate(plan.props) if not np.array_equal(p.pose, first.props[k].pose)]
        assert held == [len(plan.props) - 1]  # the held object moves with the hand, the scene does not
    for i in range(3):
        a, b = sharp[i], blur[i]
        np.testing.assert_array_equal(a.depth_mm, b.depth_mm)
        np.testing.assert_array_equal(a.mask, b.mask)
        smeared = np.abs(a.rgb.astype(int) - b.rgb).max(axis=2) > 2
        assert smeared.sum() > 20 and smeared[a.mask].mean() > 0.1


def test_synth_refuses_trajectory_options_without_a_sequence(tmp_path, capsys):
    from synth.generator import synth_main

    assert synth_main(["--out", str(tmp_path / "x"), "--frames", "2", "--keyframe-every", "6"]) != 0
    assert "--sequence" in capsys.readouterr().err
