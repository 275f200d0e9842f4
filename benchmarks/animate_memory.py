"""Peak memory of ``python -m x2face animate`` on a 5-minute 720p clip (issue #6: under 2 GB).

    python benchmarks/animate_memory.py                      # both modes, demo-size random model, 1 thread
    python benchmarks/animate_memory.py --modes crop --minutes 1

The driving clip is a real 1280x720 clip of ../shared/data/real looped to ``--minutes`` minutes with
ffmpeg's stream copy (no re-encoding: it takes a second). Each mode runs the real command line in a
child process while this script samples the resident memory of the whole process tree (Python +
the ffmpeg decoder + the ffmpeg encoder) from /proc every 50 ms; ``ru_maxrss`` of the child (the
largest single process) is reported too. Results go to ``benchmarks/results/animate_memory.json``.

The weights are random (the architecture, not training, sets memory and speed): ``--config demo``
(128 px, 16 base channels) by default, ``paper`` for the full 256 px model.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("X2FACE_SHARED", ROOT.parent / "shared"))
CLIP = SHARED / "data/real/clips/KwaiVGI_LivePortrait__assets_examples_source_s18.mp4"  # 1280x720, 30 fps, 9.4 s
PHOTO = SHARED / "data/real/photos/KwaiVGI_LivePortrait__assets_examples_source_s9.jpg"  # 720x1280 portrait
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants (Linux /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{entry}/statm", "rb") as fh:
                pages = int(fh.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        pid = int(entry)
        parents[pid] = int(stat[1])  # fields after "(comm)": state, ppid, ...
        rss[pid] = pages * PAGE
    members, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in members:
                members.add(pid)
                frontier.append(pid)
    return sum(rss.get(pid, 0) for pid in members)


def run_measured(cmd: list[str], env: dict[str, str], logdir: Path) -> dict:
    """Run ``cmd``; return its exit code, wall time, peak tree RSS and the child's own ru_maxrss."""
    t0 = time.perf_counter()
    with open(logdir / "stdout.txt", "w") as out, open(logdir / "stderr.txt", "w") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], tree_rss(proc.pid))
                done.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # wait4: the rusage of this child alone (and the ffmpeg children it reaped); ru_maxrss is in KiB
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        sampler.join()
    stdout = (logdir / "stdout.txt").read_text().strip()
    return {"returncode": proc.returncode, "seconds": round(time.perf_counter() - t0, 1),
            "peak_tree_rss_mb": round(peak[0] / 2**20, 1), "max_single_process_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "summary": stdout.splitlines()[-1] if stdout else "",
            "stderr_tail": (logdir / "stderr.txt").read_text().strip()[-500:]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=5.0, help="length of the driving clip (default 5)")
    p.add_argument("--clip", type=Path, default=CLIP, help="a real clip to loop (default: a 1280x720 LivePortrait clip)")
    p.add_argument("--photo", type=Path, default=PHOTO, help="source photo (default: a 720x1280 photo)")
    p.add_argument("--config", default="demo", help="named architecture for the random weights (tiny, demo, paper)")
    p.add_argument("--modes", default="crop,paste-back", help="comma-separated: crop, paste-back")
    p.add_argument("--threads", type=int, default=1, help="torch threads in the animate process (default 1)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/animate_memory.json")
    args = p.parse_args()

    sys.path.insert(0, str(ROOT))
    import torch

    from x2face import X2Face, get_config
    from x2face.media import ffmpeg_exe, probe_video

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - {"crop", "paste-back"}
    if unknown:
        p.error(f"unknown mode(s) {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="x2face-mem-") as tmp:
        tmp = Path(tmp)
        clip = tmp / "driving.mp4"
        seconds = args.minutes * 60
        subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(args.clip),
                        "-t", f"{seconds}", "-c", "copy", str(clip)], check=True)
        info = probe_video(clip)
        torch.manual_seed(0)
        weights = tmp / "weights"
        X2Face(get_config(args.config)).save_pretrained(weights)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(args.threads)}
        runs = []
        for mode in modes:
            out = tmp / f"{mode}.mp4"
            cmd = [sys.executable, "-m", "x2face", "animate", "--source", str(args.photo), "--driving", str(clip),
                   "--out", str(out), "--weights", str(weights), "--threads", str(args.threads), "--quiet",
                   "--max-seconds", str(seconds + 60)]
            if mode == "paste-back":
                cmd.append("--paste-back")
            print(f"[{mode}] {' '.join(cmd)}", flush=True)
            result = run_measured(cmd, env, tmp)
            result["mode"] = mode
            result["output"] = (lambda i: {"width": i.width, "height": i.height, "duration": i.duration,
                                           "has_audio": i.has_audio})(probe_video(out)) if out.exists() else None
            runs.append(result)
            print(json.dumps(result, indent=2), flush=True)

    report = {
        "benchmark": "peak memory of python -m x2face animate on a long 720p clip",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "driving_clip": {"source": str(args.clip.name), "width": info.width, "height": info.height,
                         "fps": float(info.fps), "seconds": info.duration, "looped_with": "ffmpeg -stream_loop -c copy"},
        "source_photo": args.photo.name,
        "config": args.config, "weights": "random (seed 0)", "torch_threads": args.threads,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__},
        "limit_mb": 2048,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if all(r["returncode"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
