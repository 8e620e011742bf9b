"""The tracker: objective, backends that agree, PSO, recovery, loss and re-acquisition, real frames."""

from __future__ import annotations


import cv2
import numpy as np
import pytest

from handrgbd import CameraIntrinsics, Recording
from renderer.projection import RegionOfInterest
from renderer.tiled import TileSums
from tracker import HandModel, HandPose
from tracker.objective import CpuScorer, GlScorer, ObjectiveConfig, objective_from_sums
from tracker.kinematics import finger_crossing_penalty
from tracker.pso import PSOConfig, constriction, draw_moves, optimize, pso_step_kernel
from tracker.tracking import Tracker, TrackerConfig, depth_foreground

CAM = CameraIntrinsics(475.0, 475.0, 159.5, 119.5, 320, 240)
SR305 = "tests/data/sr305"


def _pose(name="relaxed", z=450.0, q=(0.97, 0.1, 0.2, 0.0)):
    return HandPose.canonical(name, position_mm=(0.0, 0.0, z), orientation=q).to_array()


def _render_full(params, side="right", forearm=False):
    """Depth of the primitives model for ``params`` (with its forearm cone), rendered over the whole CAM image."""
    model = HandModel(side, forearm=forearm)
    scorer = CpuScorer(model.primitive_set, tile_size=320)
    roi = RegionOfInterest(0, -40, 320, 280)  # square, 1 tile pixel = 1 image pixel
    tile = scorer.render(model.primitives(params), CAM, roi)[0]
    return tile[40:280]


def test_constriction_factor():
    assert constriction(2.8, 1.3) == pytest.approx(0.7298, abs=1e-4)
    with pytest.raises(ValueError, match="impossible PSO budget"):
        PSOConfig(particles=0)
    with pytest.raises(ValueError, match="c1 \\+ c2 > 4"):
        PSOConfig(c1=1.0, c2=1.0)


def test_objective_terms_by_hand():
    sums = TileSums(np.array([120.0, 0.0]), np.array([10.0, 4.0]), np.array([6.0, 4.0]))
    cfg = ObjectiveConfig(d_max_mm=40.0, lambda_silhouette=20.0, lambda_crossing=10.0, eps=0.0)
    e = objective_from_sums(sums, np.array([0.0, 0.1]), cfg)
    # 120 / 10 + 20 * (1 - 2 * 6 / (6 + 10)) = 12 + 5 = 17;  0 + 20 * (1 - 8 / 8) + 10 * 0.1 = 1
    np.testing.assert_allclose(e, [17.0, 1.0])


def test_pso_step_kernel_matches_numpy():
    rng = np.random.default_rng(0)
    n, d = 6, 27
    x, v, pb = rng.normal(size=(n, d)), rng.normal(size=(n, d)), rng.normal(size=(n, d))
    g, r1, r2 = rng.normal(size=d), rng.random((n, d)), rng.random((n, d))
    lo, hi = np.full(d, -1.0), np.full(d, 1.0)
    lo[:7], hi[:7] = -np.inf, np.inf
    xk, vk = x.copy(), v.copy()
    pso_step_kernel(xk, vk, pb, g, r1, r2, 0.73, 2.8, 1.3, lo, hi)
    vn = 0.73 * (v + 2.8 * r1 * (pb - x) + 1.3 * r2 * (g - x))
    xn = x + vn
    clamped = (xn < lo) | (xn > hi)
    xn = np.clip(xn, lo, hi)
    vn[clamped] = 0.0
    xn[:, 3:7] /= np.linalg.norm(xn[:, 3:7], axis=1, keepdims=True)
    np.testing.assert_allclose(xk, xn, atol=1e-12)
    np.testing.assert_allclose(vk, vn, atol=1e-12)


@pytest.mark.parametrize("free_offset, side, n, generations, block_bytes", [
    (False, "right", 24, 7, None), (True, "left", 7, 5, None), (False, "right", 1, 1, None),
    (False, "left", 9, 6, 2 * 8 * 27 * 9 * 2)])  # the last in blocks of 2 generations
def test_fused_cpu_run_is_the_python_loop(free_offset, side, n, generations, block_bytes, monkeypatch):
    """CpuScorer.optimize (whole blocks of generations per numba call) against tracker.pso.optimize
    over the Python objective: the same moves and values, so the same best pose."""
    import tracker.pso as pso_module

    if block_bytes:
        monkeypatch.setattr(pso_module, "MOVES_BLOCK_BYTES", block_bytes)
    truth = HandPose.canonical("relaxed", position_mm=(0.0, 0.0, 430.0), orientation=(0.97, 0.1, 0.2, 0.0),
                               side=side).to_array()
    model = HandModel(side)
    observed = _render_full(truth, side)
    hand = observed > 0
    roi = RegionOfInterest.from_mask(hand, margin=0.15)
    obs = roi.sample(np.where(hand, observed, 0.0), 64).astype(np.float32)
    mask = roi.sample(hand, 64, fill=False)
    scorer, cfg = CpuScorer(model.primitive_set, 64), ObjectiveConfig()

    def f(X):
        sums = scorer.sums(model.primitives(X), CAM, roi, obs, mask, cfg.d_max_mm, free_offset)
        return objective_from_sums(sums, finger_crossing_penalty(X), cfg)

    rng = np.random.default_rng(11)
    start = truth + np.concatenate([rng.normal(0, 8, 3), rng.normal(0, 0.05, 4), rng.normal(0, 0.2, 20)])
    swarm = np.repeat(start[None], n, axis=0) + np.concatenate([np.zeros((n, 7)), rng.normal(0, 0.1, (n, 20))], 1)
    pso = PSOConfig(n, generations, redraw_every=3)
    loop = optimize(f, swarm, pso, np.random.default_rng(5))
    fused = scorer.optimize(model, swarm, pso, np.random.default_rng(5), CAM, roi, obs, mask, cfg, free_offset)
    np.testing.assert_allclose(fused.best, loop.best, rtol=0, atol=1e-9)
    assert fused.best_value == pytest.approx(loop.best_value, rel=1e-12) and fused.evaluations == loop.evaluations
    if generations > 1:
        assert loop.best_value < f(swarm[:1])[0]  # the run improved on its start


def test_moves_are_drawn_in_the_loops_order_in_blocks(monkeypatch):
    import tracker.pso as pso_module

    pso = PSOConfig(6, 8, redraw_every=3)
    whole = list(draw_moves(pso, 6, np.random.default_rng(2)))
    assert len(whole) == 1 and whole[0].r1.shape == (7, 6, 27)
    assert [bool((whole[0].redraw_rows[g] >= 0).all()) for g in range(7)] == [False, False, True, False, False, True,
                                                                               False]  # generations 3 and 6
    monkeypatch.setattr(pso_module, "MOVES_BLOCK_BYTES", 2 * 8 * 27 * 6 * 3)  # 3 generations a block
    blocks = list(draw_moves(pso, 6, np.random.default_rng(2)))
    assert [b.r1.shape[0] for b in blocks] == [3, 3, 1]
    for name in whole[0]._fields:
        np.testing.assert_array_equal(np.concatenate([getattr(b, name) for b in blocks]), getattr(whole[0], name))
    one = list(draw_moves(PSOConfig(6, 1), 6, np.random.default_rng(2)))
    assert len(one) == 1 and one[0].r1.shape == (0, 6, 27)


def test_nothing_in_view_with_eps_0_is_infinitely_bad_in_both_loops():
    """0 / 0 (no pixel in either mask, eps = 0) reads as +inf, never as a best pose."""
    model = HandModel()
    scorer, cfg = CpuScorer(model.primitive_set, 16), ObjectiveConfig(eps=0.0)
    roi = RegionOfInterest(0, 0, 320, 320)
    obs, mask = np.zeros((16, 16), np.float32), np.zeros((16, 16), bool)
    behind = np.repeat(_pose("open", -500.0)[None], 4, axis=0)  # behind the camera: nothing rendered

    def f(X):
        sums = scorer.sums(model.primitives(X), CAM, roi, obs, mask, cfg.d_max_mm)
        with np.errstate(invalid="ignore", divide="ignore"):
            return objective_from_sums(sums, finger_crossing_penalty(X), cfg)

    pso = PSOConfig(4, 2)
    loop = optimize(f, behind, pso, np.random.default_rng(0))
    fused = scorer.optimize(model, behind, pso, np.random.default_rng(0), CAM, roi, obs, mask, cfg)
    assert loop.best_value == fused.best_value == np.inf


def test_gl_and_cpu_backends_agree(gl_context):
    rng = np.random.default_rng(1)
    model = HandModel()
    p = np.tile(_pose(), (48, 1))
    p[:, :3] += rng.normal(0, 15, (48, 3))
    p[:, 7:] += rng.normal(0, 0.3, (48, 20))
    T = model.primitives(p)
    roi = RegionOfInterest(60, 0, 260, 200)
    cpu, gl = CpuScorer(model.primitive_set, 64), GlScorer(model.primitive_set, 64, 48, context=gl_context)
    try:
        a, b = cpu.render(T, CAM, roi), gl.render(T, CAM, roi)
        assert ((a > 0) != (b > 0)).mean() < 0.01
        both = (a > 0) | (b > 0)
        assert (np.abs(a - b)[both] <= 1.0).mean() >= 0.99
        obs = a[0]
        s1, s2 = cpu.sums(T, CAM, roi, obs, obs > 0, 40.0), gl.sums(T, CAM, roi, obs, obs > 0, 40.0)
        kc = np.zeros(48)
        e1, e2 = objective_from_sums(s1, kc, ObjectiveConfig()), objective_from_sums(s2, kc, ObjectiveConfig())
        np.testing.assert_allclose(e1[1:], e2[1:], rtol=0.01)
        rel = np.where(obs > 0, obs - 300.0, 0)  # known up to a constant, as depth from RGB
        f1 = objective_from_sums(cpu.sums(T, CAM, roi, rel, obs > 0, 40.0, free_offset=True), kc, ObjectiveConfig())
        f2 = objective_from_sums(gl.sums(T, CAM, roi, rel, obs > 0, 40.0, free_offset=True), kc, ObjectiveConfig())
        np.testing.assert_allclose(f1[1:], f2[1:], rtol=0.01)
        assert f1[0] == pytest.approx(e1[0], abs=1e-3) and np.argmin(f1) == 0  # the offset found is 300 mm
    finally:
        gl.close()


def test_recovers_a_pose_rendered_by_its_own_model():
    truth = _pose()
    depth = _render_full(truth)
    rng = np.random.default_rng(2)
    start = truth.copy()
    start[:3] += rng.normal(0, 6, 3)
    start[7:] += rng.normal(0, 0.1, 20)
    model = HandModel()
    with Tracker(CAM, TrackerConfig(backend="cpu", seed=3)) as tr:
        tr.reset(start)
        for _ in range(6):  # a static hand, tracked over a few frames
            r = tr.step(depth)
    err = np.linalg.norm(r.joints_mm - model.joints(truth)[0], axis=1).mean()
    assert r.status == "tracked" and err < 5.0


def test_empty_frames_give_no_hand_then_reacquire():
    truth = _pose()
    depth = _render_full(truth)
    empty = np.zeros_like(depth)
    statuses, errors = [], []
    model = HandModel()
    with Tracker(CAM, TrackerConfig(backend="cpu", seed=4, pso=PSOConfig(64, 15), init_generations=30)) as tr:
        tr.reset(truth)
        for d in [depth] * 2 + [empty] * 5 + [depth] * 3:
            r = tr.step(d)
            statuses.append(r.status)
            if r.joints_mm is not None:
                assert np.isfinite(r.joints_mm).all()
                errors.append(np.linalg.norm(r.joints_mm - model.joints(truth)[0], axis=1).mean())
    assert statuses[2:7] == ["no_hand"] * 5
    assert statuses[7:] == ["tracked"] * 3
    assert errors[-1] < 30.0  # re-acquired by automatic initialisation (not exact: no prior pose)


def test_a_start_fits_the_hand_alone_and_tracking_adds_the_forearm():
    """(Re-)initialisation scores the 37-primitive hand (the detection cuts the arm to a stub):
    the first frame of an automatic start is the same with and without the forearm, bit for bit;
    the next frame tracks the 38-primitive model, and differs. On the region as detected
    (``hand_split`` off): the split, trained on LibHand's labels, whose hand ends above the
    model's wrist, cuts this primitive render's heel, and from the start it gives this small
    budget's next frame came out the same with and without the forearm."""
    truth = _pose()
    depth = _render_full(truth)
    out = {}
    for forearm in (False, True):
        with Tracker(CAM, TrackerConfig(backend="cpu", seed=3, pso=PSOConfig(32, 6), init_generations=8,
                                        forearm=forearm, hand_split=False)) as tr:
            first = tr.step(depth)
            assert tr.model.forearm is forearm and len(tr.model.primitive_set) == 37 + forearm
            out[forearm] = first, tr.step(depth)
    (first_hand, next_hand), (first_arm, next_arm) = out[False], out[True]
    np.testing.assert_array_equal(first_hand.params, first_arm.params)
    assert first_hand.iou == first_arm.iou and first_hand.objective == first_arm.objective
    assert not np.array_equal(next_hand.params, next_arm.params)
    # a render without an arm: the tracked forearm has nothing to explain, and does not push the
    # fit off the hand (this small budget starts 38 mm off; the next frame stays there)
    error = [np.linalg.norm(r.joints_mm - HandModel().joints(truth)[0], axis=1).mean() for r in (first_arm, next_arm)]
    assert error[1] < error[0] + 5.0


def test_a_given_mask_with_the_arm_is_tracked_with_the_forearm_on_metric_depth():
    """A given mask that takes in the arm (an eq. 1 network's) gets the model's forearm with
    metric depth, not with depth known up to a constant (RGB only) nor for a mask of the hand
    alone. While tracking, a surface the mask joins to the hand without touching it (a box
    beside it, within eq. 1's 300 mm) is left out: the solution explains the hand and its arm
    (on the whole mask its silhouette would cover under half of it, a loss)."""
    truth = _pose()
    depth = _render_full(truth, forearm=True)  # the arm runs off the image's bottom edge
    hand = depth > 0
    depth[:, :80] = 520.0  # a box left of the hand, larger than hand and arm together
    for arm, offset_free, primitives in ((True, False, 38), (True, True, 37), (False, False, 37)):
        with Tracker(CAM, TrackerConfig(mask_source="given", mask_has_arm=arm, depth_offset_free=offset_free,
                                        backend="cpu", seed=0, pso=PSOConfig(16, 4))) as tr:
            tr.reset(truth)
            assert len(tr.model.primitive_set) == primitives
            r = tr.step(depth, depth > 0)
        if primitives == 38:
            assert r.status == "tracked" and r.iou > 0.8 and r.coverage > 0.9
            assert np.linalg.norm(r.joints_mm - HandModel().joints(truth)[0], axis=1).mean() < 5.0
        else:  # the hand alone on a mask with the arm and the box
            assert r.iou < 0.7
    # a network's outline, where its depth blends into the background's, stays in the mask (the
    # grown surface leaves it out); without that band the silhouette spills over the mask
    outline = hand & ~(cv2.erode(hand.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0)
    depth[outline] = depth[hand].mean() + 200.0
    iou = {}
    for band in (4, 0):
        with Tracker(CAM, TrackerConfig(mask_source="given", mask_has_arm=True, given_outline_px=band, backend="cpu",
                                        seed=0, pso=PSOConfig(16, 4))) as tr:
            tr.reset(truth)
            iou[band] = tr.step(depth, depth > 0).iou
    assert iou[4] > 0.85 and iou[0] < iou[4] - 0.05


@pytest.mark.parametrize("q", [(-0.45, -0.8, -0.4, 0.03), (-0.4, 0.19, -0.88, -0.18)])
def test_restarts_find_a_start_that_one_swarm_misses(q):
    """A fist turned away from the camera: one swarm seeded from the best start candidates
    settles 60+ mm off (a basin that looks best from the grid), independent swarms from shares
    of the candidates find the hand (docs/tracker.md, "Initialisation"). The orientation grid's
    start (``learned_start=0``) on the region as detected (``hand_split`` off: the split cuts this
    primitive render's heel, see above); the learned start's (the default), below."""
    truth = HandPose.canonical("fist", position_mm=(0.0, 0.0, 450.0), orientation=q).to_array()
    depth = _render_full(truth)
    error, objective = {}, {}
    for restarts in (1, 6):
        with Tracker(CAM, TrackerConfig(backend="cpu", seed=1, pso=PSOConfig(64, 15), init_generations=30,
                                        init_restarts=restarts, learned_start=0, hand_split=False)) as tr:
            r = tr.step(depth)
        error[restarts] = np.linalg.norm(r.joints_mm - HandModel().joints(truth)[0], axis=1).mean()
        objective[restarts] = r.objective
    assert error[1] > 40.0 and error[6] < 15.0 and objective[6] < objective[1]
    # the learned start (default) proposes three poses near this fist, though trained on another
    # hand's renders (LibHand's mesh): one swarm from each finds it
    with Tracker(CAM, TrackerConfig(backend="cpu", seed=1, pso=PSOConfig(64, 15), init_generations=30)) as tr:
        r = tr.step(depth)
    assert np.linalg.norm(r.joints_mm - HandModel().joints(truth)[0], axis=1).mean() < 15.0
    with pytest.raises(ValueError, match="init_restarts"):
        TrackerConfig(init_restarts=0)


def test_restarts_default_to_six_with_metric_depth_and_one_with_rgb_only():
    """init_restarts None: INIT_RESTARTS swarms on metric depth, one when the depth's offset is
    free (RGB only, where more search found wrong fits that score better); also through
    dataclasses.replace, as the C2-rgb study and live make their configs."""
    from dataclasses import replace

    from tracker.tracking import INIT_RESTARTS

    depth = _render_full(_pose("fist"))
    base = TrackerConfig(backend="cpu", seed=1, pso=PSOConfig(32, 4), init_generations=6)
    for free, explicit in ((False, INIT_RESTARTS), (True, 1)):
        params = []
        for config in (replace(base, depth_offset_free=free), replace(base, depth_offset_free=free,
                                                                      init_restarts=explicit)):
            with Tracker(CAM, config) as tr:
                params.append(tr.step(depth).params)
        np.testing.assert_array_equal(params[0], params[1])
    assert INIT_RESTARTS == 6


def test_foreground_follows_eq_1():
    d = np.array([[0, 600, 890], [905, 1200, np.float32(600.5)]], np.float32)
    np.testing.assert_array_equal(depth_foreground(d), [[0, 1, 1], [0, 0, 1]])


@pytest.mark.parametrize("depth, message", [
    (np.zeros((240, 320), np.uint16), "float millimetres"),
    (np.zeros((240, 320, 3), np.float32), "2-D"),
    (np.zeros((100, 320), np.float32), "camera is 320x240"),
])
def test_bad_depth_input(depth, message):
    with Tracker(CAM, TrackerConfig(backend="cpu")) as tr:
        with pytest.raises(ValueError, match=message):
            tr.step(depth)


def test_zero_and_nan_depth_mean_no_hand():
    with Tracker(CAM, TrackerConfig(backend="cpu")) as tr:
        assert tr.step(np.zeros((240, 320), np.float32)).status == "no_hand"
        r = tr.step(np.full((240, 320), np.nan, np.float32))
        assert r.status == "no_hand" and r.joints_mm is None


def test_bad_configs():
    with pytest.raises(ValueError, match="mask_source"):
        TrackerConfig(mask_source="magic")
    with pytest.raises(ValueError, match="scoring backend"):
        Tracker(CAM, TrackerConfig(backend="vulkan"))


def test_real_sr305_frames_automatic_initialisation():
    """The 19 real depth frames: automatic initialisation runs and puts the joints in the hand."""
    rec = Recording(SR305)
    config = TrackerConfig(backend="cpu", pso=PSOConfig(32, 10), init_generations=10, seed=5)
    with Tracker(rec.camera, config) as tr:
        for frame in rec:
            tr.reset()
            r = tr.step(frame.depth_mm)
            assert r.status in ("tracked", "lost")
            hand = depth_foreground(frame.depth_mm)
            v, u = np.nonzero(hand)
            cloud = rec.camera.unproject(np.stack([u, v], -1), frame.depth_mm[v, u])
            lo, hi = cloud.min(0) - 30.0, cloud.max(0) + 30.0  # bounds of the hand's point cloud, 3 cm slack
            inside = np.all((r.joints_mm >= lo) & (r.joints_mm <= hi), axis=1)
            assert inside.mean() >= 0.9, frame.name


def test_track_command_writes_results_and_overlays(tmp_path):
    import json

    from tracker.run import track_main

    code = track_main(["data/embedded/test_sequence", "--out", str(tmp_path), "--init", "gt", "--backend", "cpu",
                       "--frames", "4", "--particles", "24", "--generations", "6", "--overlay", "--json"])
    assert code == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert {"frames", "fps", "mpjpe_mm", "lost_frames"} <= set(res) and res["frames"] == 4
    assert np.isfinite(res["mpjpe_mm"]) and res["mpjpe_mm"] < 50
    assert np.load(tmp_path / "joints.npy").shape == (4, 21, 3)
    assert len(list((tmp_path / "overlay").glob("*.png"))) == 4


def test_offset_free_tracking_finds_the_distance_from_the_silhouette():
    """Depth known up to a constant: a start 200 mm too far comes back to the true distance, from
    the silhouette's size alone (the regression on real estimated depth is in test_pose_c1_c2)."""
    truth = _pose(z=450.0)
    depth = _render_full(truth)
    shifted = np.where(depth > 0, depth - 150.0, 0.0).astype(np.float32)  # off by a constant
    start = truth.copy()
    start[2] += 200.0
    with Tracker(CAM, TrackerConfig(backend="cpu", seed=5, depth_offset_free=True, mask_source="given")) as tr:
        tr.reset(start)
        for _ in range(8):
            r = tr.step(shifted, mask=depth > 0)
    assert r.status == "tracked" and abs(r.params[2] - truth[2]) < 20.0


def test_a_drifted_solution_does_not_cut_away_the_whole_hand():
    """The forearm cut is relative to the previous wrist; a previous solution far beyond the
    observed hand would cut every pixel (this crashed offset-free tracking on estimated depth)."""
    truth = _pose(z=450.0)
    depth = _render_full(truth)
    j = HandModel("right").joints(truth)[0]
    axis = (j[9] - j[0]) / np.linalg.norm(j[9] - j[0])
    start = truth.copy()
    start[:3] += 600.0 * axis  # every observed point lies far behind this wrist
    for offset_free in (True, False):
        with Tracker(CAM, TrackerConfig(backend="cpu", seed=5, depth_offset_free=offset_free,
                                        mask_source="given")) as tr:
            tr.reset(start)
            assert not tr._cut_forearm(depth > 0, depth, CAM).any()  # the situation this test is about
            r = tr.step(depth, mask=depth > 0)
            assert r.params is not None and np.isfinite(r.objective)


def test_side_auto_fits_both_models_and_keeps_the_better():
    """On the embedded (left-hand) sequence the left model fits frame 0 better than the right
    (objective), and auto keeps its side while tracking; a fixed side is reported as such."""
    rec = Recording("data/embedded/test_sequence")
    fits = {}
    for side in ("left", "right"):
        with Tracker(rec.camera, TrackerConfig(side=side, backend="cpu")) as tr:
            r = tr.step(rec[0].depth_mm)
            assert r.side == side == tr.side
            fits[side] = r.objective
    assert fits["left"] < fits["right"]
    with Tracker(rec.camera, TrackerConfig(side="auto", backend="cpu")) as tr:
        assert [tr.step(rec[i].depth_mm).side for i in range(3)] == ["left"] * 3
        tr.reset(rec.poses[0], side="right")
        assert tr.side == "right" and tr.step(rec[1].depth_mm).side == "right"
        with pytest.raises(ValueError, match="needs its side"):
            tr.reset(rec.poses[0])
    with pytest.raises(ValueError, match="'auto'"):
        TrackerConfig(side="up")
    with Tracker(rec.camera, TrackerConfig(side="left", backend="cpu")) as tr, pytest.raises(ValueError, match="right"):
        tr.reset(rec.poses[0], side="right")


def test_a_hand_that_jumps_away_is_flagged_within_3_frames():
    """The observed hand jumps 120 mm sideways, out of the tracker's region of interest: the
    solution left behind does not explain the observation, so it is not reported "tracked"
    (issue 20's drift case), and after ``lost_frames`` such frames the tracker re-initialises."""
    model = HandModel()
    here, there = _pose(), _pose()
    there[0] += 120.0
    frames = [here] * 3 + [there] * 6
    config = TrackerConfig(backend="cpu", seed=0, mask_source="given", pso=PSOConfig(64, 15), init_generations=30)
    with Tracker(CAM, config) as tr:
        tr.reset(here)
        results, kept = [], []
        for p in frames:
            depth = _render_full(p)
            r = tr.step(depth, mask=depth > 0)
            err = np.linalg.norm(r.joints_mm - model.joints(p)[0], axis=1).mean()
            results.append((r.status, err, r.iou, r.coverage))
            kept.append(tr.has_track)
    assert all(s == "tracked" and e < 10 and iou > 0.9 and cov > 0.9 for s, e, iou, cov in results[:3])
    reset_at = 3 + config.lost_frames - 1  # the last jumped frame lets go of the solution
    assert kept[:reset_at] == [True] * reset_at and not kept[reset_at]
    jumped = results[3:3 + config.lost_frames]  # the frames before the re-initialisation
    assert all(s == "lost" and e > 30 and iou < config.min_iou for s, e, iou, _ in jumped)
    # then a fresh start from the observed mask (how close it gets is initialisation's test)
    assert all(np.isfinite(e) and iou > 0 for _, e, iou, _ in results[3 + config.lost_frames:])


def test_after_a_loss_on_a_poor_given_mask_the_start_competes_with_carrying_on():
    """A network's mask that also takes in a patch of background (300 mm behind the hand) makes
    the true pose score poorly: after ``lost_frames`` such frames the tracker lets go and starts
    afresh (on the hand detected inside the mask). With a given mask that start competes with the
    solution it let go of, run through the frame's swarm on the same view, and the lower
    objective is kept (``restart_competes``, on by default there); off, the start is taken
    whatever it scores."""
    model = HandModel()
    here = _pose()
    depth = _render_full(here)
    patch = np.zeros_like(depth, bool)
    patch[20:220, 0:110] = True
    patch &= depth <= 0
    observed = np.where(patch, float(np.median(depth[depth > 0])) + 300.0, depth).astype(np.float32)
    truth = model.joints(here)[0]
    runs = {}
    for competes in (True, False):
        config = TrackerConfig(backend="cpu", seed=0, mask_source="given", pso=PSOConfig(64, 15),
                               init_generations=30, restart_competes=competes)
        with Tracker(CAM, config) as tr:
            tr.reset(here)
            steps = []
            for _ in range(config.lost_frames + 1):
                r = tr.step(observed, mask=observed > 0)
                steps.append((r.status, np.linalg.norm(r.joints_mm - truth, axis=1).mean(), r.objective, tr.has_track))
        runs[competes] = steps
        n = config.lost_frames
        assert all(o > config.lost_objective for _, _, o, _ in steps[:n])  # the patch is not explained
        assert steps[n - 1][0] == "lost" and not steps[n - 1][3]  # the loss lets go either way
    carried, restarted = runs[True][n], runs[False][n]  # the start's frame: the same start in both runs
    assert carried[2] <= restarted[2]  # the lower objective of the two was kept...
    assert carried[1] < 1.0 < 3.0 < restarted[1]  # ...here the solution let go of, on the hand
    assert TrackerConfig().restart_competes is None  # resolved by the mask source


def test_fit_quality_thresholds_are_checked():
    with pytest.raises(ValueError, match="min_iou"):
        TrackerConfig(min_iou=1.5)
    with pytest.raises(ValueError, match="min_coverage"):
        TrackerConfig(min_coverage=-0.1)
    with pytest.raises(ValueError, match="region_min_cover"):
        TrackerConfig(region_min_cover=1.2)
    for name, value in (("region_margin_mm", 0.0), ("region_front_mm", -5.0), ("region_thin_mm", float("nan"))):
        with pytest.raises(ValueError, match=f"{name} must be > 0 mm or None"):
            TrackerConfig(**{name: value})


def test_tracker_config_refuses_fewer_than_one_keypoint_mode():
    with pytest.raises(ValueError, match="keypoint_modes must be >= 1"):
        TrackerConfig(keypoint_modes=0)


# ---- keypoints (issue 21) ------------------------------------------------------------------------
def _fused_against_the_python_loop(make_term, prior=None, seed=3):
    """The fused kernel's run against tracker.optimize over the Python objective (sums,
    crossing, ``keypoint_term`` of ``make_term(tile_uv_of_the_truth, rng)``, ``pose_prior_term``
    of ``prior``): the same best pose and value."""
    from tracker.objective import keypoint_term, pose_prior_term

    truth = HandPose.canonical("relaxed", position_mm=(0.0, 0.0, 430.0), orientation=(0.97, 0.1, 0.2, 0.0)).to_array()
    model = HandModel("right")
    observed = _render_full(truth, "right")
    hand = observed > 0
    roi = RegionOfInterest.from_mask(hand, margin=0.15)
    obs = roi.sample(np.where(hand, observed, 0.0), 64).astype(np.float32)
    mask = roi.sample(hand, 64, fill=False)
    tile = roi.camera(CAM, 64)
    rng = np.random.default_rng(seed)
    term = make_term(tile.project(model.joints(truth)[0]), rng)
    scorer, cfg = CpuScorer(model.primitive_set, 64), ObjectiveConfig()

    def f(X):
        sums = scorer.sums(model.primitives(X), CAM, roi, obs, mask, cfg.d_max_mm, True)
        value = objective_from_sums(sums, finger_crossing_penalty(X), cfg) + keypoint_term(model.joints(X), tile, term)
        return value if prior is None else value + pose_prior_term(X, prior)

    start = truth + np.concatenate([rng.normal(0, 8, 3), rng.normal(0, 0.05, 4), rng.normal(0, 0.2, 20)])
    swarm = np.repeat(start[None], 12, axis=0) + np.concatenate([np.zeros((12, 7)), rng.normal(0, 0.1, (12, 20))], 1)
    pso = PSOConfig(12, 4)
    loop = optimize(f, swarm, pso, np.random.default_rng(5))
    fused = scorer.optimize(model, swarm, pso, np.random.default_rng(5), CAM, roi, obs, mask, cfg, True, term, prior)
    np.testing.assert_allclose(fused.best, loop.best, rtol=0, atol=1e-9)
    assert fused.best_value == pytest.approx(loop.best_value, rel=1e-12)


def test_keypoint_term_in_the_fused_run_is_the_python_objectives():
    from tracker.objective import KeypointTerm

    def term(uv, rng):
        weights = rng.uniform(0, 1, 21)
        weights[[2, 7]] = 0.0
        return KeypointTerm(uv + rng.normal(0, 2, (21, 2)), weights / weights.sum(), 30.0, 10.0, 0.1)

    _fused_against_the_python_loop(term)


def test_keypoint_modes_in_the_fused_run_are_the_python_objectives():
    """With several modes per joint the fused kernel's term is keypoint_term's."""
    from tracker.objective import KeypointTerm

    def term(uv, rng):
        modes = np.stack([uv + rng.normal(0, 15, (21, 2)), uv + rng.normal(0, 2, (21, 2)), uv + 30.0], axis=1)
        ratio = np.stack([np.ones(21), rng.uniform(0.3, 1.0, 21), np.where(rng.uniform(size=21) < 0.5, 0.4, 0.0)], 1)
        return KeypointTerm(modes, np.full(21, 1 / 21), 30.0, 10.0, 0.1, ratio)

    _fused_against_the_python_loop(term, seed=4)


def test_pose_prior_in_the_fused_run_is_the_python_objectives():
    """The fused kernel's pose prior (with a keypoint term too) is pose_prior_term's."""
    from tracker.objective import KeypointTerm, load_pose_prior

    def term(uv, rng):
        return KeypointTerm(uv + rng.normal(0, 2, (21, 2)), np.full(21, 1 / 21), 30.0, 10.0, 0.1)

    _fused_against_the_python_loop(term, load_pose_prior(3.0), seed=6)


def test_pose_prior_term_is_zero_at_the_mean_and_lambda_one_spread_away():
    from tracker.objective import PosePrior, pose_prior_term

    mean, std = np.linspace(-0.2, 1.0, 20), np.linspace(0.1, 0.5, 20)
    prior = PosePrior(mean, 1.0 / std, 4.0)
    X = np.zeros((3, 27))
    X[:, 7:] = mean
    X[1, 7:] += std
    X[2, 7:10] -= 2 * std[:3]  # three angles two spreads off: 4 x 3 x 4 / 20
    np.testing.assert_allclose(pose_prior_term(X, prior), [0.0, 4.0, 2.4], atol=1e-12)
    with pytest.raises(ValueError, match="pose_prior_weight must be finite and >= 0"):
        TrackerConfig(pose_prior_weight=-1.0)


def test_the_pose_prior_acts_while_following_not_at_the_start():
    """An open hand far from the real poses' mean, a prior strong enough to override the depth:
    the start (which leaves the prior out) finds the open fingers; the next frame, following
    with the prior, bends them toward the mean; weight 0 keeps them."""
    from tracker.objective import load_pose_prior

    truth = HandPose.canonical("open", position_mm=(10.0, 5.0, 450.0), orientation=(0.95, 0.2, 0.1, 0.2)).to_array()
    observed = _render_full(truth, "right")
    mean = load_pose_prior(1.0).mean

    def run(weight):
        cfg = TrackerConfig(pso=PSOConfig(48, 20), backend="cpu", pose_prior_weight=weight)
        with Tracker(CAM, cfg) as t:
            first = t.step(observed)
            second = t.step(observed)
        return first.params, second.params

    for weight in (0.0, 1000.0):
        first, second = run(weight)
        assert np.abs(first[7:] - truth[7:]).mean() < np.abs(first[7:] - mean).mean()  # the start: the data
        nearer_mean = np.abs(second[7:] - mean).mean() < np.abs(first[7:] - mean).mean() - 0.05
        assert nearer_mean == (weight > 0)


def test_keypoint_modes_cost_one_minus_their_strength():
    """A joint on a lower mode of strength a costs 1 - a of its weight; on the peak nothing; a
    single mode of strength 1 is the plain term."""
    from tracker.objective import KeypointTerm, keypoint_term

    joints = HandModel("right").joints(HandPose.canonical("open").to_array())
    uv = CAM.project(joints[0])
    w = np.full(21, 1 / 21)
    elsewhere = uv + 500.0
    on_second = KeypointTerm(np.stack([elsewhere, uv], 1), w, 100.0, 10.0, 0.1, np.tile([1.0, 0.4], (21, 1)))
    assert keypoint_term(joints, CAM, on_second)[0] == pytest.approx(10.0 * 0.6, rel=1e-3)
    on_peak = on_second._replace(uv=np.stack([uv, elsewhere], 1))
    assert keypoint_term(joints, CAM, on_peak)[0] == pytest.approx(0.0, abs=1e-12)
    plain = KeypointTerm(uv + 7.0, w, 100.0, 10.0, 0.1)
    single = KeypointTerm((uv + 7.0)[:, None], w, 100.0, 10.0, 0.1, np.ones((21, 1)))
    assert keypoint_term(joints, CAM, single)[0] == keypoint_term(joints, CAM, plain)[0]


def test_keypoint_term_is_zero_at_the_keypoints_and_bounded():
    from tracker.objective import KeypointTerm, keypoint_term

    joints = HandModel("right").joints(HandPose.canonical("open").to_array())
    uv = CAM.project(joints[0])
    term = KeypointTerm(uv, np.full(21, 1 / 21), 100.0, 10.0, 0.1)
    assert keypoint_term(joints, CAM, term)[0] == pytest.approx(0.0, abs=1e-12)
    far = KeypointTerm(uv + 1e4, term.weights, 100.0, 10.0, 0.1)
    assert 9.99 < keypoint_term(joints, CAM, far)[0] < 10.0  # every joint far off: at most lambda


def test_pnp_palm_poses_recover_the_palm():
    """Projections of a known hand's wrist and knuckles give back its palm pose (either side)."""
    from tracker.tracking import PALM_KEYPOINTS, pnp_palm_poses

    rng = np.random.default_rng(1)
    for side in ("right", "left"):
        model = HandModel(side, 170.0)
        q = rng.normal(size=4)
        p = HandPose.canonical("fist", position_mm=(20.0, -10.0, 450.0), orientation=q / np.linalg.norm(q),
                               side=side).to_array()
        uv = CAM.project(model.joints(p)[0][list(PALM_KEYPOINTS)])
        poses = pnp_palm_poses(model, uv, CAM)
        assert poses and min(np.abs(t - p[:3]).max() for _, t in poses) < 0.5


def test_keypoints_fix_the_distance_rgb_only():
    """Depth known only up to a constant: the silhouette alone leaves the distance loose; true
    keypoints (and the hand length) pin it."""
    from handrgbd.joints import Keypoints

    truth = HandPose.canonical("open", position_mm=(10.0, 5.0, 500.0), orientation=(0.95, 0.2, 0.1, 0.2)).to_array()
    observed = _render_full(truth, "right")
    hand = observed > 0
    uv = CAM.project(HandModel("right").joints(truth)[0])
    cfg = TrackerConfig(pso=PSOConfig(48, 20), backend="cpu", mask_source="given", depth_offset_free=True)
    shifted = np.where(hand, observed + 150.0, 0.0).astype(np.float32)  # the depth's level is wrong
    with Tracker(CAM, cfg) as t:
        r = t.step(shifted, mask=hand, keypoints=Keypoints(uv, np.ones(21)))
    err = np.linalg.norm(r.joints_mm - HandModel("right").joints(truth)[0], axis=-1).mean()
    assert err < 15.0


def test_a_second_heatmap_mode_at_the_truth_lets_the_depth_choose():
    """Keypoint peaks of the fingers where a fist would put them, the true places a second mode
    of 0.8 of the peak's strength, over the open hand's depth: with the peaks alone the fit
    bends the fingers toward them; with the modes the depth and silhouette choose the truth."""
    from handrgbd.joints import Keypoints

    where = dict(position_mm=(10.0, 5.0, 500.0), orientation=(0.95, 0.2, 0.1, 0.2))
    truth, fist = (HandPose.canonical(name, **where).to_array() for name in ("open", "fist"))
    model = HandModel("right")
    observed = _render_full(truth, "right")
    hand = observed > 0
    uv_true, uv_fist = (CAM.project(model.joints(p)[0]) for p in (truth, fist))
    fingers = np.linalg.norm(uv_true - uv_fist, axis=-1) > 15.0
    assert fingers.sum() >= 12  # the fingers' upper joints; the palm's keypoints stay right
    peaks = np.where(fingers[:, None], uv_fist, uv_true)
    ratio = np.where(fingers[:, None], [1.0, 0.8], [1.0, 0.0])
    keypoints = Keypoints(peaks, np.ones(21), None, np.stack([peaks, uv_true], 1), ratio)
    errors = {}
    for modes in (1, 3):
        cfg = TrackerConfig(pso=PSOConfig(48, 20), backend="cpu", mask_source="given", keypoint_modes=modes)
        with Tracker(CAM, cfg) as t:
            r = t.step(observed, mask=hand, keypoints=keypoints)
        errors[modes] = np.linalg.norm(r.joints_mm - model.joints(truth)[0], axis=-1)[fingers].mean()
    assert errors[3] < 3.0 and errors[1] > 8.0, errors


def _board_in_front(truth, gap_mm=25.0, reach_px=100):
    """The hand's depth with a board held against its palm: a rectangle ``gap_mm`` in front of
    the palm's centre (near enough for the depth region to join it to the hand), from 20 px
    above the palm's centre to 40 below, and from 10 px left of it to ``reach_px`` past the
    hand's right side. Returns the depth and the board's pixels."""
    depth = _render_full(truth)
    uv = CAM.project(HandModel().joints(truth)[0])
    palm = uv[[0, 5, 9, 13, 17]].mean(0).round().astype(int)
    board = np.zeros(depth.shape, bool)
    cols = np.nonzero((depth > 0).any(0))[0]
    board[palm[1] - 20:palm[1] + 40, palm[0] - 10:cols.max() + reach_px] = True
    out = depth.copy()
    out[board] = depth[palm[1], palm[0]] - gap_mm
    return out, board


def test_a_board_held_against_the_palm_does_not_pull_the_hand():
    """Sensor depth, the hand's region grown over the surface: a board in front of the palm joins
    it. Kept to the points near the previous solution's skeleton and not in front of it
    (``region_margin_mm``, ``region_front_mm``; the rest as occluders), the tracker stays on the
    hand; with the region as grown (None) the board pulls the fit off it (it is lost on the
    4th frame and restarts on the board) unless the start after the loss leaves the board out
    (``hand_split``, the default): then it restarts on the hand. Without the pose prior: with it
    the whole region held here too (4 mm), so the prior would hide what the rule does."""
    truth = _pose()
    depth, board = _board_in_front(truth)
    hand_cols = np.nonzero((_render_full(truth) > 0).any(0))[0]
    far = board.copy()
    far[:, :hand_cols.max() + 30] = False  # the board from 30 px (28 mm) past the hand's side on
    want = HandModel().joints(truth)[0]
    rng = np.random.default_rng(2)
    start = truth.copy()  # a few millimetres and degrees off, as a previous frame's fit
    start[:3] += rng.normal(0, 6, 3)
    start[7:] += rng.normal(0, 0.1, 20)
    rule = TrackerConfig().region_margin_mm  # the default
    errors, far_seen, restarted = {}, {}, {}
    for margin, split in ((rule, True), (None, False), (None, True)):
        with Tracker(CAM, TrackerConfig(backend="cpu", seed=3, pso=PSOConfig(64, 15), region_margin_mm=margin,
                                          pose_prior_weight=0.0, hand_split=split)) as tr:
            tr.reset(start)
            for _ in range(6):
                was_tracking = tr.previous is not None
                r = tr.step(depth)
                if not was_tracking:  # the start after the loss: its mask
                    restarted[margin, split] = int((r.mask & far).sum())
        errors[margin, split] = np.linalg.norm(r.joints_mm - want, axis=1).mean()
        far_seen[margin, split] = int((r.mask & far).sum())
    assert far_seen[rule, True] == 0 and far_seen[None, False] > 0.5 * far.sum()
    assert errors[rule, True] < 8.0 and errors[None, False] > 30.0, errors
    assert restarted[None, False] > 0.5 * far.sum() and restarted[None, True] < 0.1 * far.sum()
    assert errors[None, True] < 10.0, errors


def test_a_board_across_the_palm_leaves_the_heel_in_the_region():
    """A held object in front of the palm cuts the hand's surface in two: fingers above it, the
    heel and the arm below. The region grown from the previous solution (its palm's centre, its
    knuckles and its wrist) keeps both parts; grown from the knuckles alone it kept an eighth of
    the heel (hard bench, object sequence 0: the fit then slid off the hand)."""
    from tracker.detect import hand_region

    truth = _pose()
    depth = _render_full(truth, forearm=True)
    hand = depth > 0
    joints = HandModel().joints(truth)[0]
    uv = CAM.project(joints)
    assert uv[0, 1] > 150 and uv[[5, 9, 13, 17], 1].max() < 85  # fingers up, the wrist below
    board = np.zeros(depth.shape, bool)
    cols = np.nonzero(hand.any(0))[0]
    board[88:140, cols.min() - 20:cols.max() + 20] = True  # across the palm, below the knuckles
    observed = np.where(board, np.median(depth[hand]) - 40.0, depth).astype(np.float32)
    heel = hand & ~board
    heel[:140] = False
    assert heel.sum() > 3000
    with Tracker(CAM, TrackerConfig(backend="cpu")) as tr:
        region = tr._previous_region(observed, CAM, joints)
        knuckles = hand_region(observed, CAM, joints[[0, 5, 9, 13, 17]].mean(0), tr.config.detector,
                               knuckles_mm=joints[[5, 9, 13, 17]])
    assert (region & heel).sum() > 0.95 * heel.sum()
    assert (knuckles & heel).sum() < 0.5 * heel.sum()  # the knuckles alone do not reach it
    assert (region & hand & ~board)[:80].sum() > 1000  # and the fingers above stay


def test_a_hand_that_moved_past_the_margin_keeps_its_whole_region():
    """The rule keeps the region near the previous solution only while that solution still lies
    on it (``region_min_cover``): a hand 60 mm away from it (frames far apart, a fast hand) keeps
    all of its pixels, which the next fit needs; on the hand, pixels past the margin go."""
    truth = _pose()
    depth, board = _board_in_front(truth)
    moved = truth.copy()
    moved[0] += 60.0
    region = depth > 0
    with Tracker(CAM, TrackerConfig(backend="cpu")) as tr:
        for previous, whole in ((moved, True), (truth, False)):
            tr.reset(previous)
            kept = tr._near_previous(region, depth, CAM, tr.model.joints(previous)[0])
            assert kept.sum() <= region.sum() and not (kept & ~region).any()
            assert bool(kept.sum() == region.sum()) is whole
