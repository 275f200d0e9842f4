"""``python -m x2face COMMAND ...``: the command-line entry point.

Commands are registered by name in ``COMMANDS`` as ``"module:function"``; the module is imported
only when its command runs, so ``python -m x2face --help`` stays fast. Each function takes the
remaining arguments (``list[str]``) and returns an exit code. ``X2FaceError``s (bad input, missing
files) are printed as one line with exit code 2, never as a traceback; set ``X2FACE_DEBUG=1`` to
see tracebacks.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
from typing import Iterator

#: command name -> ("module:function", one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "convert-original": ("x2face.convert:main", "convert the authors' release checkpoint (and pose files) to an x2face folder"),
    "info": ("x2face.hub:main", "describe a weights folder or Hub repo: config, parameters, provenance"),
    "env": ("x2face.doctor:main", "show what x2face finds on this machine: versions, CPU/GPU, ffmpeg, face detectors"),
    "push": ("x2face.publish:main", "publish weights to the Hugging Face Hub with a model card (and their evaluation)"),
    "animate": ("x2face.animate:main", "animate a face photo with a driving video: --source PHOTO --driving CLIP --out OUT.mp4"),
    "embed": ("x2face.embed:main", "write a photo's embedded face to paint on (animate --edit-painted drives it)"),
    "evaluate": ("x2face.evaluate:main", "measure a model on the synthetic world and real clips (report.json, report.md)"),
    "bench": ("x2face.bench:main", "measure speed (drive, full forward, animate, training) against the fp32 baseline"),
    "train": ("x2face.train:main", "train X2Face from a config (stage I, stage II; torchrun for many GPUs)"),
    "train-identity": ("x2face.train:main_identity", "train the VGG-11 identity network stage II's losses use"),
    "fit-pose": ("x2face.control.fit:main_fit_pose", "fit the pose maps f_v->p, f_p->v of trained weights (drive with a head pose)"),
    "train-audio": ("x2face.control.train_audio:main", "train the SyncNet-style audio features by audio-visual sync"),
    "fit-audio": ("x2face.control.fit:main_fit_audio", "fit the audio map f_a->v of trained weights (drive with a voice)"),
}

#: commands that run the networks for inference: ``main`` sets torch's CPU threads for them
#: (``x2face.fast.configure_cpu_threads``: X2FACE_THREADS, OMP_NUM_THREADS or one per physical core)
#: unless the command line gives ``--threads``. (bench sets its own; training takes its config's.)
INFERENCE_COMMANDS = ("animate", "embed", "evaluate", "fit-pose", "fit-audio")


def _configure_threads(name: str, rest: list[str]) -> None:
    if name not in INFERENCE_COMMANDS or any(a in ("-h", "--help") for a in rest):
        return
    if any(a == "--threads" or a.startswith("--threads=") for a in rest):
        return  # the user's choice; the command sets it
    from .fast import configure_cpu_threads

    configure_cpu_threads()


#: commands that handle SIGTERM themselves (a checkpoint, then exit); the others stop as on Ctrl-C (``_stop_signals``)
OWN_SIGNALS = ("train", "train-identity", "train-audio")


class Stopped(BaseException):
    """SIGTERM or SIGHUP arrived (``kill``, a closed terminal, a job scheduler): the command stops as on Ctrl-C, its
    ``finally`` blocks removing partial outputs, and exits with 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _stop_signals(name: str) -> Iterator[None]:
    """While a command runs in the main thread, SIGTERM and SIGHUP raise ``Stopped`` (Python's default for them
    is to die at once, leaving an output's temporary files behind); a signal that is ignored (``nohup``) stays
    ignored, and the previous handlers come back after."""
    if name in OWN_SIGNALS or threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Stopped(signum)

    wanted = [getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]
    before = {}
    for sig in wanted:
        if signal.getsignal(sig) is signal.SIG_IGN:  # nohup's SIGHUP, say: ignored it stays
            continue
        with contextlib.suppress(ValueError, OSError):
            before[sig] = signal.signal(sig, stop)
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: python -m x2face COMMAND [options]   (COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv`` (default ``sys.argv[1:]``) to a registered command and return its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from . import __version__

        print(f"x2face {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"x2face: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    target, _ = COMMANDS[name]
    module_name, func_name = target.split(":")
    from .errors import X2FaceError

    try:
        with _stop_signals(name):
            _configure_threads(name, rest)
            func = getattr(importlib.import_module(module_name), func_name)
            return int(func(rest) or 0)
    except Stopped as stop:
        print(f"x2face {name}: stopped by {signal.Signals(stop.signum).name}", file=sys.stderr)
        return 128 + stop.signum
    except X2FaceError as exc:
        if os.environ.get("X2FACE_DEBUG"):
            raise
        print(f"x2face {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"x2face {name}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"x2face {name}: error: out of memory (try a shorter clip, smaller batch or a smaller model)", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: say so in one line, keep the traceback behind X2FACE_DEBUG
        if os.environ.get("X2FACE_DEBUG"):
            raise
        print(f"x2face {name}: internal error: {type(exc).__name__}: {exc} (set X2FACE_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 1
