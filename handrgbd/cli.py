"""The ``handrgbd`` command: one entry point, subcommands from each package.

Subcommands are registered as ``name -> (help, "module:function")`` and imported only when
run, so ``handrgbd --help`` stays fast and the core package imports nothing else. Each target
is a ``main(argv) -> int`` function, and its module has ``build_parser()`` returning the
command's :class:`handrgbd.args.CommandParser` (:func:`command_parser`), so every option is
checked the same way (``handrgbd CMD: error: --option: why (got X)``, exit status 2).
"""

from __future__ import annotations

import importlib
import logging
import sys

#: exit status after Ctrl-C (128 + SIGINT, as shells report it)
INTERRUPTED = 130

#: subcommand -> (one-line help, "module:function" taking argv and returning an exit code)
COMMANDS: dict[str, tuple[str, str]] = {
    "gl-info": ("open an OpenGL context, print the backend/renderer, render a test sphere",
                "renderer.cli:gl_info_main"),
    "synth": ("render synthetic RGB-D hand frames with ground truth (recording folder)",
              "synth.generator:synth_main"),
    "train": ("train the RGB -> hand depth network on recording folders (resumable)",
              "depthnet.train:train_main"),
    "merge": ("weights of a base network plus shares of fine-tunes of it (weight-space ensemble)",
              "depthnet.merge:merge_main"),
    "mine": ("hard negatives: squares without a hand the live localiser is sure of (for train --hand-free-mined)",
             "live.mining:mine_main"),
    "eval": ("evaluate depth network weights: E (mm), F(e) curve, mask IoU, qualitative figure",
             "depthnet.evaluate:eval_main"),
    "track": ("track a hand through a recording folder (PSO on depth) and score against ground truth",
              "tracker.run:track_main"),
    "fit-poses": ("fit the 27-parameter hand to a recording's joints.npy: poses.npy for --init gt",
                  "tracker.fit:fit_main"),
    "compare": ("compare trackers across depth sources against ground truth (table, CSV, JSON, PCK plot)",
                "experiments.compare_depth_sources:main"),
    "live": ("track a hand in 3D from an RGB camera or video, in a window or headless",
             "live.app:live_main"),
    "show": ("contact sheet of a recording folder: RGB | depth | mask | joints",
             "synth.show:show_main"),
    "model": ("render the LibHand mesh and the tracker's primitives side by side for a pose",
              "synth.model_figure:model_main"),
}


def command_parser(name: str):
    """The :class:`handrgbd.args.CommandParser` of subcommand ``name`` (imports its module)."""
    module_name = COMMANDS[name][1].split(":")[0]
    return importlib.import_module(module_name).build_parser()


def main(argv: list[str] | None = None) -> int:
    from handrgbd.args import CommandParser

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = CommandParser(prog="handrgbd", description="RGB -> hand depth -> 3D hand tracking.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, _target) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("OpenGL").setLevel(logging.WARNING)  # PyOpenGL's "no accelerate module" notice
    module_name, func_name = COMMANDS[args.command][1].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        return int(func(rest) or 0)
    except KeyboardInterrupt:  # what was finished is written (see docs/cli.md); no traceback
        print(f"handrgbd {args.command}: interrupted", file=sys.stderr, flush=True)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
