"""Run the x2face CLI, or a benchmark script, in this process: for experiments that patch x2face's networks."""
from __future__ import annotations

import argparse
import runpy
import sys


def run_command(command: list[str], parser: argparse.ArgumentParser) -> int:
    """``command`` is x2face CLI arguments (``train ...``, ``evaluate ...``) or ``run SCRIPT.py ARGS``; returns the
    exit status. ``parser`` reports a missing command."""
    if not command:
        parser.error("give an x2face command, or run SCRIPT.py ARGS")
    if command[0] == "run":
        if len(command) < 2:
            parser.error("run needs a script")
        sys.argv = command[1:]
        runpy.run_path(command[1], run_name="__main__")
        return 0
    from x2face.cli import main as x2face_main

    return x2face_main(command)
