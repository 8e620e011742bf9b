"""Bad input never gives a traceback, a hang, invalid JSON, silent junk or a lost file.

Each case of the bad-input audit (issue 24) is here: every option of every command against bad
values, implausible recordings, unusable depth, runs that stop early, outputs of an earlier run,
and live's weights, output paths and capture thread.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from handrgbd import cli
from handrgbd.args import CommandParser, integer, number, rephrase
from handrgbd.outputs import check_outputs, finite_or_none, write_json
from handrgbd.recording import Recording

REPO = Path(__file__).resolve().parents[1]
EMBEDDED = REPO / "data" / "embedded" / "test_sequence"
FAST = ["--particles", "8", "--generations", "2"]

#: the parsers of every command a user runs: the handrgbd subcommands and the experiments
PARSERS = {name: (lambda name=name: cli.command_parser(name)) for name in cli.COMMANDS}
PARSERS.update({f"experiments.{m}": (lambda m=m: __import__(f"experiments.{m}", fromlist=["x"]).build_parser())
                for m in ("pose_c1_c2", "ablation", "tracker_accuracy", "keypoint_weight")})


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """``handrgbd ARGV`` in this process -> (exit status, stderr)."""
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def strict_json(path: Path):
    """Parse ``path`` as RFC 8259 JSON: NaN and Infinity are errors, as in every other parser."""
    def reject(name):
        raise AssertionError(f"{path}: {name} is not JSON")
    return json.loads(path.read_text(), parse_constant=reject)


def small_recording(dst: Path, frames: int = 3, camera: dict | None = None, depth=None, joints=None) -> Path:
    """The embedded sequence's first frames, with camera.json keys, the depth or the joints replaced."""
    dst.mkdir(parents=True)
    meta = json.loads((EMBEDDED / "camera.json").read_text())
    meta.update(camera or {})
    (dst / "camera.json").write_text(json.dumps(meta))
    for kind in ("rgb", "depth", "depth_gt", "mask"):
        (dst / kind).mkdir()
        for i in range(frames):
            src = EMBEDDED / kind / f"{i:06d}.png"
            if depth is not None and kind in ("depth", "depth_gt"):
                d = cv2.imread(str(src), cv2.IMREAD_UNCHANGED)
                d[:] = depth
                cv2.imwrite(str(dst / kind / src.name), d)
            else:
                shutil.copy(src, dst / kind / src.name)
    j = np.load(EMBEDDED / "joints.npy")[:frames]
    if joints is not None:
        j[:] = joints
    np.save(dst / "joints.npy", j)
    np.save(dst / "poses.npy", np.load(EMBEDDED / "poses.npy")[:frames])
    return dst


# ---- 1. arguments -------------------------------------------------------------------------------
def _bad_values(kind) -> list[str]:
    lo, hi = kind.lo, kind.hi
    bad = ["abc", "1.5e", ""]
    if lo is not None:
        bad.append(str(lo - 1) if kind.__name__ == "integer" else repr(lo - 1e-3 - abs(lo) * 1e-3))
    if hi is not None:
        bad.append(str(hi + 1) if kind.__name__ == "integer" else repr(hi * 10 + 1))
    if kind.__name__ == "number":
        bad += ["nan", "inf", "-inf"]
    else:
        bad.append("2.5")
    return bad


#: bad values for the options whose type is not a number (by the type function's name)
BAD_TEXT = {"out_path": ["", "   "], "existing_file": ["", "no/such/file.pt", "."]}


def _options(parser) -> list:
    return [a for a in parser._actions if a.option_strings and a.type is not None]


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_every_typed_option_checks_its_values(command, capsys):
    parser = PARSERS[command]()
    assert isinstance(parser, CommandParser)
    checked = 0
    for action in _options(parser):
        opt = max(action.option_strings, key=len)
        assert action.type not in (int, float), f"{command} {opt}: a bare {action.type.__name__} accepts junk"
        kind = action.type
        values = _bad_values(kind) if hasattr(kind, "lo") else BAD_TEXT.get(kind.__name__, ["", "no-such::x:y:z"])
        for value in values:
            # "--opt=-inf": argparse reads a lone "-inf" as an option, not a value
            argv = [opt] + [value] * action.nargs if isinstance(action.nargs, int) else [f"{opt}={value}"]
            with pytest.raises(SystemExit) as e:
                parser.parse_args(argv)
            err = capsys.readouterr().err
            assert e.value.code == 2, (command, argv)
            first = err.splitlines()[0]
            assert first.startswith(f"{parser.prog}: error: {opt}: "), (command, argv, err)
            assert "(got " in first and "Traceback" not in err, (command, argv, err)
            checked += 1
    for action in parser._actions:  # choices: the value and the allowed ones are named
        if action.option_strings and action.choices and action.type is None:
            opt = max(action.option_strings, key=len)
            with pytest.raises(SystemExit):
                parser.parse_args([opt, "bogus"])
            first = capsys.readouterr().err.splitlines()[0]
            assert first.startswith(f"{parser.prog}: error: {opt}: must be one of ") and "(got 'bogus')" in first
            checked += 1
    assert checked or command == "gl-info" and not _options(parser)


@pytest.mark.parametrize("argv, option", [
    (["synth", "--out", "x", "--frames", "1", "--size", "0"], "--size"),
    (["synth", "--out", "x", "--frames", "1", "--size", "5"], "--size"),
    (["train", "--data", "x", "--out", "y", "--workers", "-1"], "--workers"),
    (["train", "--data", "x", "--out", "y", "--epochs", "0"], "--epochs"),
    (["train", "--data", "x", "--out", "y", "--batch-size", "0"], "--batch-size"),
    (["track", "x", "--out", "y", "--frames", "0"], "--frames"),
    (["track", "x", "--out", "y", "--frames", "-2"], "--frames"),
    (["track", "x", "--out", "y", "--seed", "-1"], "--seed"),
    (["eval", "--data", "x", "--frames", "-1"], "--frames"),
    (["show", "x", "--rows", "0"], "--rows"),
    (["show", "x", "--size", "0"], "--size"),
    (["compare", "--trackers", "pso:abc"], "--trackers"),
    (["compare", "--trackers", "pso:64x25:vulkan"], "--trackers"),
    (["compare", "--trackers", "pso:64x25+arm"], "--trackers"),
    (["compare", "--sources", "degraded:x"], "--sources"),
    (["compare", "--workers", "0"], "--workers"),
    (["live", "--hfov", "0", "--video", "v.mp4"], "--hfov"),
    (["model", "--hand-length", "1e38"], "--hand-length"),
])
def test_audited_bad_arguments_name_the_option(argv, option, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(argv, capsys)
    assert code == 2
    assert err.startswith(f"handrgbd {argv[0]}: error: {option}: ") and "(got " in err
    assert "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing created


def test_the_real_entry_point_prints_one_line_and_no_traceback():
    p = subprocess.run([sys.executable, "-m", "handrgbd.cli", "track", "x", "--out", "y", "--frames", "0"],
                       capture_output=True, text=True, timeout=120, cwd=REPO)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.splitlines()[0] == ("handrgbd track: error: --frames: must be N (the first N frames) or A:B "
                                        "(frames A to B-1, from 0), A: or :B (got '0')")


def test_argument_types_and_messages():
    assert integer(1, 5)("3") == 3 and number(0, 1, lo_open=True)("1") == 1.0
    with pytest.raises(Exception, match=r"must be an integer in \[1, 5\] \(got 6\)"):
        integer(1, 5)("6")
    with pytest.raises(Exception, match=r"must be a number in \(0, 1\] \(got 0\)"):
        number(0, 1, lo_open=True)("0")
    assert rephrase("argument -v/--verbose: expected one argument") == "--verbose: expected one argument"
    assert rephrase("argument --b: invalid choice: 'x' (choose from 'a', 'b')") == "--b: must be one of a, b (got 'x')"
    assert rephrase("the following arguments are required: --out") == "the following arguments are required: --out"


# ---- 2. plausible recordings ----------------------------------------------------------------------
@pytest.mark.parametrize("camera, match", [
    ({"fx": 1e-300}, r"camera.json: key 'fx' must be in \[10, 100000\] pixels"),
    ({"fy": 3e5}, r"camera.json: key 'fy' must be in"),
    ({"cx": 1e6}, r"camera.json: key 'cx' puts the image centre more than 80 degrees off"),
    ({"depth_unit_mm": 1e-300}, r"camera.json: key 'depth_unit_mm' must be in \[0.01, 100\]"),
    ({"depth_unit_mm": 1000}, r"camera.json: key 'depth_unit_mm' must be in"),
])
def test_implausible_cameras_name_file_and_key(tmp_path, camera, match):
    with pytest.raises(ValueError, match=match):
        Recording(small_recording(tmp_path / "r", 1, camera=camera))


def test_joints_and_intrinsics_must_be_plausible(tmp_path):
    with pytest.raises(ValueError, match=r"joints.npy: joints farther than 10 m .* row 0 \(frame 000000\)"):
        Recording(small_recording(tmp_path / "a", 2, joints=1e38))
    rec = small_recording(tmp_path / "b", 2)
    np.save(rec / "intrinsics.npy", np.array([[600, 600, 128, 128], [600, 600, 128, 5e6]], np.float32))
    with pytest.raises(ValueError, match=r"intrinsics.npy: row 1 \(frame 000001\): cy puts the image centre"):
        Recording(rec)
    np.save(rec / "intrinsics.npy", np.array([[600, 600, 128, 128], [2, 600, 128, 128]], np.float32))
    with pytest.raises(ValueError, match=r"intrinsics.npy: row 1 \(frame 000001\): fx must be in"):
        Recording(rec)
    Recording(small_recording(tmp_path / "c", 2))  # the real thing passes


def test_poses_and_joints_that_disagree_name_the_recording(tmp_path, capsys):
    rec = small_recording(tmp_path / "r", 2)
    poses, joints = np.load(rec / "poses.npy"), np.load(rec / "joints.npy")
    t = poses[:, None, :3]
    np.save(rec / "joints.npy", t + 5 * (joints - t))  # a hand five times too long for its pose
    for argv in (["track", str(rec), "--out", str(tmp_path / "o"), "--init", "gt"],
                 ["compare", "--data", str(rec), "--out", str(tmp_path / "c"), "--sources", "sensor",
                  "--trackers", "pso:8x2", "--no-progress"]):
        code, err = run_cli(argv, capsys)
        assert code == 2 and f"{rec}: poses.npy and joints.npy of frame 000000 disagree" in err, err
    assert not (tmp_path / "o").exists() and not (tmp_path / "c").exists()


def test_implausible_recording_through_a_command(tmp_path, capsys):
    rec = small_recording(tmp_path / "r", 2, camera={"fx": 1e-300})
    code, err = run_cli(["track", str(rec), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and f"{rec / 'camera.json'}: key 'fx'" in err and not (tmp_path / "o").exists()


# ---- 3. valid JSON, unusable depth, early stops ------------------------------------------------------
@pytest.mark.parametrize("depth", [0, 65535])
def test_unusable_depth_is_no_hand_and_a_clear_error(tmp_path, capsys, depth):
    rec = small_recording(tmp_path / "r", 2, depth=depth)
    code, err = run_cli(["track", str(rec), "--out", str(tmp_path / "o"), "--init", "gt", *FAST], capsys)
    assert code == 2 and "no frame has usable depth" in err and "depth_unit_mm" in err
    res = strict_json(tmp_path / "o" / "results.json")
    assert res["no_hand_frames"] == 2 and res["unusable_depth_frames"] == 2 and res["mpjpe_mm"] is None
    assert res["pck_curve"] is None and "mpjpe_mm" in res["undefined"] and "pck_curve" in res["undefined"]


def test_a_wall_is_no_hand_with_reasons_not_nan(tmp_path, capsys):
    rec = small_recording(tmp_path / "r", 2, depth=600)
    code, _ = run_cli(["track", str(rec), "--out", str(tmp_path / "o"), *FAST], capsys)
    res = strict_json(tmp_path / "o" / "results.json")
    assert code == 0 and res["complete"] and res["no_hand_frames"] == 2 and res["unusable_depth_frames"] == 0
    assert res["mpjpe_mm"] is None and set(res["undefined"]) >= {"mpjpe_mm", "pa_mpjpe_mm", "pck_curve"}


def test_a_run_that_stops_early_says_where_and_why(tmp_path, capsys):
    rec = small_recording(tmp_path / "r", 3)
    (rec / "depth" / "000002.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code, err = run_cli(["track", str(rec), "--out", str(tmp_path / "o"), "--init", "gt", *FAST], capsys)
    assert code == 2 and "000002.png" in err
    res = strict_json(tmp_path / "o" / "results.json")
    assert res["complete"] is False and res["stopped_at"] == "000002" and "000002.png" in res["error"]
    assert res["frames"] == 2 and res["frames_requested"] == 3 and res["mpjpe_mm"] is not None
    assert np.isfinite(np.load(tmp_path / "o" / "joints.npy")[:2]).all()


def test_study_leaves_nothing_behind_on_bad_input(tmp_path, capsys):
    from experiments import pose_c1_c2

    rec = small_recording(tmp_path / "r", 3)
    (rec / "rgb" / "000001.png").write_bytes(b"junk")
    assert pose_c1_c2.main(["--data", str(rec), "--out", str(tmp_path / "o"), "--no-progress", *FAST]) == 2
    assert "000001.png" in capsys.readouterr().err and not (tmp_path / "o").exists()
    rec0 = small_recording(tmp_path / "z", 2, depth=0)
    assert pose_c1_c2.main(["--data", str(rec0), "--out", str(tmp_path / "o"), "--no-progress", *FAST]) == 2
    assert "no frame has usable depth" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_json_writers_are_strict_and_nan_becomes_null(tmp_path):
    with pytest.raises(ValueError):
        write_json(tmp_path / "x.json", {"a": float("nan")})
    assert not list(tmp_path.iterdir())  # nothing half-written
    clean = finite_or_none({"a": np.float32("nan"), "b": [1.0, np.inf], "c": np.arange(2), "d": (np.int64(3),)})
    assert clean == {"a": None, "b": [1.0, None], "c": [0, 1], "d": [3]}
    write_json(tmp_path / "x.json", clean)
    assert strict_json(tmp_path / "x.json") == clean


def test_a_checkpoint_that_fails_to_save_leaves_the_previous_one(tmp_path, monkeypatch):
    """``save_torch`` (every training's checkpoints and weights): the file loads back; a save that
    fails, while pickling (an object torch cannot pickle) or at the rename after the temporary
    file was written (a full disk, a crash), leaves the previous checkpoint and no temporary."""
    import torch

    import handrgbd.outputs as outputs

    path = tmp_path / "w.pt.ckpt"
    outputs.save_torch({"epoch": 3, "model": {"w": torch.arange(4.0)}}, path)
    with pytest.raises(Exception):
        outputs.save_torch({"epoch": 4, "model": {"w": torch.zeros(4)}, "bad": lambda: None}, path)

    def no_rename(src, dst):
        assert Path(src).stat().st_size > 0  # the temporary was written
        raise OSError("no space left on device")

    monkeypatch.setattr(outputs.os, "replace", no_rename)
    with pytest.raises(OSError, match="no space"):
        outputs.save_torch({"epoch": 5, "model": {"w": torch.ones(4)}}, path)
    monkeypatch.undo()
    saved = torch.load(path, weights_only=True)
    assert saved["epoch"] == 3 and torch.equal(saved["model"]["w"], torch.arange(4.0))
    assert [p.name for p in tmp_path.iterdir()] == ["w.pt.ckpt"]


# ---- 5. outputs ----------------------------------------------------------------------------------
def test_track_never_overwrites_without_overwrite(tmp_path, capsys):
    rec = small_recording(tmp_path / "r", 1)
    out = tmp_path / "o"
    assert run_cli(["track", str(rec), "--out", str(out), *FAST], capsys)[0] == 0
    before = (out / "results.json").read_bytes()
    code, err = run_cli(["track", str(rec), "--out", str(out), "--seed", "3", *FAST], capsys)
    assert code == 2 and err.startswith("handrgbd track: error: --out: ") and "--overwrite" in err
    assert (out / "results.json").read_bytes() == before
    assert run_cli(["track", str(rec), "--out", str(out), "--seed", "3", "--overwrite", *FAST], capsys)[0] == 0
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_eval_and_compare_create_no_folder_for_rejected_input(tmp_path, capsys):
    for argv in (["eval", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "e")],
                 ["compare", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "c"), "--sources", "sensor",
                  "--trackers", "pso:8x2", "--no-progress"]):
        code, err = run_cli(argv, capsys)
        assert code == 2 and "missing: not a directory" in err
    assert not (tmp_path / "e").exists() and not (tmp_path / "c").exists()


def test_eval_refuses_an_earlier_runs_metrics(tmp_path, capsys):
    out = tmp_path / "e"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    code, err = run_cli(["eval", "--data", str(EMBEDDED), "--out", str(out), "--frames", "1"], capsys)
    assert code == 2 and "metrics.json" in err and (out / "metrics.json").read_text() == "{}"
    assert check_outputs(out, ("metrics.json",), overwrite=True) == out


def test_train_refuses_a_finished_run_without_resume(tmp_path, capsys):
    import torch

    run = tmp_path / "run"
    run.mkdir()
    (run / "model.pt").write_bytes(b"x")
    try:
        code, err = run_cli(["train", "--data", str(EMBEDDED), "--out", str(run)], capsys)
    finally:
        torch.set_flush_denormal(False)  # train_main sets it for the process; later tests need subnormals
    assert code == 2 and "model.pt" in err and "--resume" in err


def test_figures_refuse_to_overwrite(tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    sheet.write_bytes(b"mine")
    code, err = run_cli(["show", str(EMBEDDED), "--out", str(sheet)], capsys)
    assert code == 2 and "--overwrite" in err and sheet.read_bytes() == b"mine"
    code, err = run_cli(["show", str(EMBEDDED), "--out", str(tmp_path / "no" / "sheet.png")], capsys)
    assert code == 2 and "does not exist" in err


# ---- 4. live ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "v.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(3):
        w.write(np.full((48, 64, 3), 40 * i, np.uint8))
    w.release()
    return path


@pytest.mark.parametrize("case", ["text-weights", "missing-output-folder", "existing-joints", "bad-intrinsics"])
def test_live_rejects_bad_setup_before_opening_the_video(tiny_video, tmp_path, case):
    text = tmp_path / "weights.pt"
    text.write_text("not weights\n")
    (tmp_path / "j.jsonl").write_text("earlier\n")
    (tmp_path / "cam.json").write_text(json.dumps({"fx": 1e-300, "fy": 1, "cx": 0, "cy": 0, "width": 64, "height": 48}))
    extra = {"text-weights": ["--weights", str(text), "--joints", str(tmp_path / "new.jsonl")],
             "missing-output-folder": ["--output", str(tmp_path / "no" / "out.mp4")],
             "existing-joints": ["--joints", str(tmp_path / "j.jsonl")],
             "bad-intrinsics": ["--intrinsics", str(tmp_path / "cam.json"), "--joints", str(tmp_path / "new.jsonl")]}
    p = subprocess.run([sys.executable, "-m", "handrgbd.cli", "live", "--video", str(tiny_video), "--headless",
                        *extra[case]], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert p.returncode == 2 and "Traceback" not in p.stderr and "terminate called" not in p.stderr
    assert "handrgbd live: error: " in p.stderr
    assert (tmp_path / "j.jsonl").read_text() == "earlier\n" and not (tmp_path / "new.jsonl").exists()
    assert not list(tmp_path.glob(".*partial*"))


class _EndlessCapture:
    """A capture whose frames never end; records whether it was released while being read."""

    def __init__(self):
        self.reading = threading.Event()
        self.released_while_reading = False
        self.released = False

    def read(self):
        self.reading.set()
        time.sleep(0.01)
        self.reading.clear()
        return True, np.zeros((4, 4, 3), np.uint8)

    def release(self):
        self.released_while_reading |= self.reading.is_set()
        self.released = True


def test_reader_stops_its_thread_before_releasing_the_capture():
    from live.app import _Reader

    cap = _EndlessCapture()
    reader = _Reader(cap)
    assert reader.read(5.0) is not None
    time.sleep(0.1)  # the queue is full: the thread waits to put
    reader.close()
    assert not reader.thread.is_alive() and cap.released and not cap.released_while_reading
    with pytest.raises(queue.Empty):
        while True:
            reader.frames.get_nowait()


# ---- found by the QA audit ---------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["track", str(EMBEDDED), "--out", "/proc/handrgbd-out"],
    ["eval", "--data", str(EMBEDDED), "--out", "/proc/handrgbd-out"],
    ["show", str(EMBEDDED), "--out", "/proc/sheet.png"],
    ["synth", "--out", "/proc/handrgbd-out", "--frames", "1"],
    ["track", str(EMBEDDED), "--out", "{file}/sub"],
    ["synth", "--out", "{file}", "--frames", "1"],
])
def test_outputs_that_cannot_be_written_are_refused_first(argv, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    argv = [a.replace("{file}", str(afile)) for a in argv]
    code, err = run_cli(argv, capsys)
    assert code == 2 and "--out: " in err and "Traceback" not in err
    assert afile.read_text() == "x"


def test_track_checks_the_mask_folder_and_first_frame_before_writing(tmp_path, capsys):
    rec = small_recording(tmp_path / "r", 3)
    nomask = small_recording(tmp_path / "m", 3)
    shutil.rmtree(nomask / "mask")
    code, err = run_cli(["track", str(rec), "--out", str(tmp_path / "o"), "--mask", str(nomask)], capsys)
    assert code == 2 and err.startswith("handrgbd track: error: --mask: ") and "000000 has none" in err
    (rec / "depth" / "000000.png").write_bytes(b"junk")
    code, err = run_cli(["track", str(rec), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "000000.png: not a PNG file" in err
    assert not (tmp_path / "o").exists()


def test_train_resume_checks_the_checkpoint_and_the_settings(tmp_path, capsys):
    import torch

    from depthnet.model import PRESETS
    from depthnet.train import TrainConfig

    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_text("garbage\n")
    config_json = json.dumps(TrainConfig((str(EMBEDDED),), str(run)).to_json(), default=str)
    (run / "config.json").write_text(config_json)
    try:
        code, err = run_cli(["train", "--data", str(EMBEDDED), "--out", str(run), "--resume"], capsys)
        assert code == 2 and "checkpoint.pt: not a readable checkpoint" in err
        torch.save({"model": {}, "optimizer": {}, "scheduler": {}, "epoch": 0, "step_in_epoch": 0, "global_step": 0,
                    "config": PRESETS["cpu"].to_dict()}, run / "checkpoint.pt")
        code, err = run_cli(["train", "--data", str(EMBEDDED), "--out", str(run), "--resume", "--lr", "0.1"], capsys)
    finally:
        torch.set_flush_denormal(False)
    assert code == 2 and "--resume: " in err and "lr: 0.001 now 0.1" in err
    assert (run / "config.json").read_text() == config_json


def test_compare_tracks_unreadable_cached_rows_again_and_refuses_unusable_depth(tmp_path, capsys):
    rec = small_recording(tmp_path / "r", 2)
    argv = ["compare", "--data", str(rec), "--out", str(tmp_path / "c"), "--sources", "sensor", "sensor",
            "--trackers", "pso:8x2", "--no-progress"]
    assert run_cli(argv, capsys)[0] == 0
    rows = list((tmp_path / "c" / "rows").glob("*.json"))
    assert len(rows) == 1  # the duplicate source is one row
    rows[0].write_text("[1, 2]")
    assert run_cli(argv, capsys)[0] == 0
    table = strict_json(tmp_path / "c" / "comparison.json")
    assert len(table) == 1 and table[0]["mpjpe_mm"] is not None and table[0]["undefined"] == {}
    assert json.loads(rows[0].read_text())["source"] == "sensor"
    zero = small_recording(tmp_path / "z", 2, depth=0)
    code, err = run_cli(["compare", "--data", str(zero), f"{zero}/.", "--out", str(tmp_path / "c2"), "--sources",
                         "sensor", "--trackers", "pso:8x2", "--no-progress"], capsys)
    assert code == 2 and "no frame usable depth" in err and not (tmp_path / "c2").exists()
    shutil.rmtree(zero / "depth")
    code, err = run_cli(["compare", "--data", str(zero), "--out", str(tmp_path / "c2"), "--sources", "sensor",
                         "--trackers", "pso:8x2", "--no-progress"], capsys)
    assert code == 2 and "has none of the images these sources read (sensor: depth/)" in err \
        and not (tmp_path / "c2").exists()


def test_synth_writes_a_damaged_frame_again(tmp_path):
    from handrgbd.camera import CameraIntrinsics
    from handrgbd.recording import RecordingWriter

    w = RecordingWriter(tmp_path / "r", CameraIntrinsics(100.0, 100.0, 7.5, 7.5, 16, 16), expect=("rgb",))
    w.write_frame(0, rgb=np.zeros((16, 16, 3), np.uint8))
    assert w.frame_done(0)
    path = tmp_path / "r" / "rgb" / "000000.png"
    path.write_bytes(path.read_bytes()[:-5])  # truncated
    assert not w.frame_done(0)


def test_live_refuses_to_write_over_its_input_or_a_non_video(tiny_video, tmp_path, capsys):
    from live.app import live_main

    for extra, message in ((["--output", str(tiny_video), "--overwrite"], "--output: the input video itself"),
                           (["--joints", str(tiny_video), "--overwrite"], "--joints: the input video itself"),
                           (["--output", str(tmp_path / "out.txt")], "--output: must end in .mp4")):
        assert live_main(["--video", str(tiny_video), "--headless", *extra]) == 2
        assert message in capsys.readouterr().err
    size = tiny_video.stat().st_size
    with pytest.raises(SystemExit):
        live_main(["--video", str(tiny_video), "--camera", "0", "--headless", "--joints", str(tmp_path / "j")])
    assert "not allowed with" in capsys.readouterr().err and tiny_video.stat().st_size == size


# ---- found by the second QA audit ----------------------------------------------------------------
def test_devices_and_pipes_are_never_replaced(tmp_path, capsys):
    import os

    fifo = tmp_path / "sheet.png"
    os.mkfifo(fifo)
    code, err = run_cli(["show", str(EMBEDDED), "--out", str(fifo), "--overwrite"], capsys)
    assert code == 2 and "not an ordinary file" in err and fifo.is_fifo()
    out = tmp_path / "o"
    out.mkdir()
    os.mkfifo(out / "results.json")
    code, err = run_cli(["track", str(EMBEDDED), "--out", str(out), "--overwrite"], capsys)
    assert code == 2 and "results.json is not an ordinary file" in err and (out / "results.json").is_fifo()


def test_a_pipe_in_a_recording_is_an_error_not_a_hang(tmp_path):
    import os

    code = ("import sys\nfrom handrgbd.recording import Recording\n"
            "try:\n    Recording(sys.argv[1])[0]\nexcept ValueError as e:\n    print(e)\n")
    for name in ("camera.json", "depth/000000.png", "joints.npy"):
        rec = small_recording(tmp_path / name.replace("/", "_"), 1)
        (rec / name).unlink()
        os.mkfifo(rec / name)
        p = subprocess.run([sys.executable, "-c", code, str(rec)], capture_output=True, text=True, timeout=60, cwd=REPO)
        assert f"{name}: not an ordinary file" in p.stdout, (name, p.stdout, p.stderr)


def test_names_too_long_are_refused(tmp_path, capsys):
    code, err = run_cli(["show", str(EMBEDDED), "--out", str(tmp_path / ("n" * 300 + ".png"))], capsys)
    assert code == 2 and err.startswith("handrgbd show: error: --out: ")
    code, err = run_cli(["track", str(EMBEDDED), "--out", str(tmp_path / ("n" * 300))], capsys)
    assert code == 2 and err.startswith("handrgbd track: error: --out: ")


def test_track_checks_skin_and_mask_sizes_before_writing(tmp_path, capsys):
    rec = small_recording(tmp_path / "r", 2)
    shutil.rmtree(rec / "rgb")
    code, err = run_cli(["track", str(rec), "--out", str(tmp_path / "o"), "--mask", "skin"], capsys)
    assert code == 2 and f"--mask skin: {rec} has no rgb/" in err
    small = tmp_path / "m"
    (small / "mask").mkdir(parents=True)
    (small / "camera.json").write_text(json.dumps({**json.loads((EMBEDDED / "camera.json").read_text()),
                                                   "width": 128, "height": 128}))
    (small / "rgb").mkdir()
    for i in range(2):
        cv2.imwrite(str(small / "mask" / f"{i:06d}.png"), np.zeros((128, 128), np.uint8))
        cv2.imwrite(str(small / "rgb" / f"{i:06d}.png"), np.zeros((128, 128, 3), np.uint8))
    code, err = run_cli(["track", str(small_recording(tmp_path / "s", 2)), "--out", str(tmp_path / "o"),
                         "--mask", str(small)], capsys)
    assert code == 2 and "--mask: " in err and "are 128x128" in err and not (tmp_path / "o").exists()


def test_ctrl_c_writes_what_was_done_and_exits_130(tmp_path):
    import os
    import signal

    out = tmp_path / "o"
    p = subprocess.Popen([sys.executable, "-m", "handrgbd.cli", "track", str(EMBEDDED), "--out", str(out),
                          "--backend", "cpu", "--particles", "64", "--generations", "3000"], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         # a shell's background job inherits SIGINT ignored, and Python then installs
                         # no KeyboardInterrupt handler: the child gets the default disposition back
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not (out / "config.json").exists() and time.time() < deadline:  # written just before tracking
        time.sleep(0.2)
    time.sleep(3.0)  # the cpu tracker is built in milliseconds: by now a frame is being tracked
    # (64 x 3000 takes about a second a frame: at 64 x 200 a warm numba cache finished all 32 in 3 s)
    os.kill(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "Traceback" not in err and "handrgbd track: interrupted" in err
    res = strict_json(out / "results.json")
    assert res["complete"] is False and res["error"] == "interrupted" and res["frames"] < 32


def test_overwrite_replaces_a_run_and_mixes_nothing_in(tmp_path, capsys):
    rec = small_recording(tmp_path / "r", 2)
    out = tmp_path / "o"
    assert run_cli(["track", str(rec), "--out", str(out), "--overlay", *FAST], capsys)[0] == 0
    assert (out / "overlay.jpg").exists() and len(list((out / "overlay").iterdir())) == 2
    assert run_cli(["track", str(rec), "--out", str(out), "--overwrite", "--frames", "1", *FAST], capsys)[0] == 0
    assert not (out / "overlay").exists() and not (out / "overlay.jpg").exists()
    assert strict_json(out / "results.json")["frames"] == 1


def test_an_empty_recording_with_arrays_opens(tmp_path):
    rec = tmp_path / "r"
    rec.mkdir()
    (rec / "camera.json").write_text((EMBEDDED / "camera.json").read_text())
    np.save(rec / "joints.npy", np.zeros((0, 21, 3), np.float32))
    assert len(Recording(rec)) == 0


def test_synth_and_compare_neither_read_nor_replace_pipes(tmp_path):
    import os

    syn = tmp_path / "syn"
    syn.mkdir()
    os.mkfifo(syn / "camera.json")
    cmp_out = tmp_path / "cmp"
    cmp_out.mkdir()
    os.mkfifo(cmp_out / "comparison.json")
    for argv, what in ((["synth", "--out", str(syn), "--frames", "1"], "camera.json"),
                       (["compare", "--out", str(cmp_out), "--sources", "sensor", "--trackers", "pso:8x2"],
                        "comparison.json")):
        p = subprocess.run([sys.executable, "-m", "handrgbd.cli", *argv], capture_output=True, text=True, timeout=120,
                           cwd=REPO)
        assert p.returncode == 2 and what in p.stderr and "not an ordinary file" in p.stderr, p.stderr
    assert (syn / "camera.json").is_fifo() and (cmp_out / "comparison.json").is_fifo()
