"""What the standalone analysis scripts of ``benchmarks/`` (warp_oracle, pose_probe, track_stride, ...) share: their
command line's weights and output options, and what they do with a result."""
from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path


def weights_parser(doc: str) -> argparse.ArgumentParser:
    """The command line of an analysis script that measures one model: ``--weights`` (default the bundled
    ``demo``) and ``--json`` (where ``finish`` writes the result); the description is ``doc``'s first line."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--weights", default="demo", help="weights spec ('demo': the bundled model)")
    ap.add_argument("--json", type=Path, help="write the result here")
    return ap


def finish(result: dict, script: str, argv: list[str] | None, out: Path | None) -> dict:
    """Stamp ``result`` with the machine, the UTC date and the command that made it (``python benchmarks/<script>``
    and ``argv``, or the process's arguments), print it as JSON and write it to ``out`` when given; returns it."""
    result = {**result, "machine": platform.processor() or platform.machine(),
              "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
              "command": f"python benchmarks/{script} " + " ".join(argv if argv is not None else sys.argv[1:])}
    text = json.dumps(result, indent=2)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    return result
