"""Run the x2face CLI, or a benchmark script, in this process: for experiments that patch x2face's networks."""
from __future__ import annotations

import argparse
import contextlib
import runpy
import sys
from typing import Any, Callable, ContextManager, Iterator

COMMAND_HELP = "x2face CLI arguments (train ..., evaluate ...), or: run SCRIPT.py ARGS"


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


@contextlib.contextmanager
def replaced(owner: Any, name: str, value: Any) -> Iterator[None]:
    """Within the block, ``owner.name`` is ``value`` (a class's method, say); the old one is back afterwards."""
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


@contextlib.contextmanager
def extend_driving_network(extend: Callable[[Any, Any], None]) -> Iterator[None]:
    """Within the block, every new ``x2face.nets.DrivingNetwork`` is built as usual and then passed, with its
    config, to ``extend`` (which changes its layers); the class is restored afterwards."""
    from x2face import nets

    init = nets.DrivingNetwork.__init__

    def patched_init(self, config) -> None:
        init(self, config)
        extend(self, config)

    with replaced(nets.DrivingNetwork, "__init__", patched_init):
        yield


def main_under(patch: Callable[[], ContextManager[None]], doc: str, argv: list[str] | None = None) -> int:
    """An experiment script's ``main``: parse ``[run SCRIPT.py] ARGS`` and run it inside ``patch()``."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("command", nargs=argparse.REMAINDER, help=COMMAND_HELP)
    args = parser.parse_args(argv)
    with patch():
        return run_command(args.command, parser)
