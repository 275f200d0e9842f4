"""``python -m x2face push``: publish weights to the Hugging Face Hub with a model card.

    python -m x2face push runs/my-model/weights you/x2face-vox --report reports/my-model [--private]
    python -m x2face push runs/my-model/weights you/x2face-vox --stage-only staged/   # write it, upload nothing

The weights are loaded first, strictly (every tensor checked against ``config.json``), so nothing broken is
published. The folder that goes up holds ``config.json`` and ``model.safetensors``, ``provenance.json`` when the
weights have one, the evaluation report (``report.json``, ``report.md`` and its figures) when ``--report`` names
one, and a ``README.md`` model card: how to use the weights (library, command line, app), the architecture, what
they were trained on and the report's numbers. Anyone then loads them by repo id:
``X2Face.from_pretrained("you/x2face-vox")``, ``--weights you/x2face-vox``, or the app's weights chooser.

Uploading needs a Hub token (``hf auth login``, or ``HF_TOKEN``) and the network; with ``HF_HUB_OFFLINE=1``
only ``--stage-only`` works.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any

from .errors import InputError, WeightsError, one_line
from .hub import PROVENANCE_NAME, load_model, read_provenance, resolve, training_summary, write_provenance
from .model import CONFIG_NAME, WEIGHTS_NAME, X2Face

#: what the card's metadata says the weights are (Hub search and filters read these)
TAGS = ("x2face", "face-reenactment", "talking-head", "pytorch_model_hub_mixin", "model_hub_mixin")
REPORT_FILES = ("report.json", "report.md")


def model_card(model: X2Face, repo_id: str, provenance: dict[str, Any], report: dict[str, Any] | None,
               license: str | None = None) -> str:
    """The ``README.md`` of a weights repo: metadata, use, architecture, training, evaluation (Markdown text)."""
    from .evaluate import metrics_table

    cfg = model.config
    meta = ["---", "library_name: x2face", "pipeline_tag: image-to-video", "tags:", *(f"- {t}" for t in TAGS)]
    meta += [f"license: {license}"] if license else []
    heads = [name for name, on in (("pose", model.pose is not None), ("audio", model.audio is not None)) if on]
    lines = [
        *meta, "---", "",
        f"# {repo_id.split('/')[-1]}", "",
        "Weights of X2Face (Wiles, Koepke and Zisserman, *X2Face: A network for controlling face generation using "
        "images, audio, and pose codes*, ECCV 2018) for the `x2face` library: animate a face photo with a driving "
        "video" + (", a head pose" if "pose" in heads else "") + (" or a voice" if "audio" in heads else "") + ".",
        "", "## Use", "", "```python",
        "from x2face.pipeline import X2FacePipeline", "",
        f'pipe = X2FacePipeline.from_pretrained("{repo_id}")   # or X2Face.from_pretrained(...) for the networks',
        'pipe.set_source("me.jpg")',
        "```", "", "```bash",
        f"python -m x2face animate --weights {repo_id} --source me.jpg --driving clip.mp4 --out out.mp4",
        f"python app.py --weights {repo_id}   # the Gradio app",
        "```", "", "## Architecture", "",
        f"- {cfg.image_size} px, {cfg.base_channels} base channels, a {cfg.vector_dim}-D driving vector: "
        f"{model.num_parameters()['total']:,} parameters",
        f"- control heads: {', '.join(heads) if heads else 'none'} "
        "(pose: `python -m x2face fit-pose`, audio: `python -m x2face fit-audio`)",
        "", "## Training", "", f"{_sentence(training_summary(provenance))}",
        "", "`provenance.json` records the run." if provenance else "The weights carry no `provenance.json`.",
        "", "## Evaluation", "",
    ]
    if report:
        lines += ["`python -m x2face evaluate` on the synthetic world's test identities (and real val clips where "
                  "marked); `report.md` has the figures.", "", *metrics_table(report)]
    else:
        lines += [f"Not evaluated here: `python -m x2face evaluate --weights {repo_id} --out report/`."]
    return "\n".join(lines) + "\n"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def stage(weights: str | os.PathLike | None, repo_id: str, out: str | os.PathLike, *,
          report_dir: str | os.PathLike | None = None, license: str | None = None, overwrite: bool = False) -> Path:
    """Write the folder ``push`` uploads into ``out`` (created; an existing non-empty one only with ``overwrite``).

    Raises:
        WeightsError: weights that do not load; InputError: a report folder without ``report.json``, or ``out``
        in the way.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise InputError(f"{repo_id!r} is not a Hub repo id (owner/name): {one_line(exc)}") from None
    if "/" not in repo_id:
        raise InputError(f"{repo_id!r} is not a Hub repo id: name its owner too, as owner/name")
    report = None
    where, _ = resolve(weights)
    if report_dir is None and (Path(where) / "report.json").is_file():
        report_dir = where  # a folder staged before (or weights kept with their report): keep the report
    if report_dir is not None:
        path = Path(report_dir) / "report.json"
        if not path.is_file():
            raise InputError(f"no report.json in {report_dir} (write one with `python -m x2face evaluate --out DIR`)")
        report = json.loads(path.read_text(encoding="utf-8"))
    model = load_model(weights, device="cpu")  # strict: a broken folder stops here
    out = _clear_out(Path(out), [Path(where), *([Path(report_dir)] if report_dir is not None else [])], overwrite)
    model.save_pretrained(out)  # config.json + model.safetensors, as loaded
    provenance = read_provenance(weights)
    if provenance:
        write_provenance(out, provenance)
    if report_dir is not None:
        for f in Path(report_dir).iterdir():
            if f.name in REPORT_FILES or f.suffix == ".png":
                shutil.copy2(f, out / f.name)
    (out / "README.md").write_text(model_card(model, repo_id, provenance, report, license), encoding="utf-8")
    return out


def _clear_out(out: Path, inputs: list[Path], overwrite: bool) -> Path:
    """``out`` made and empty. Refused: a folder holding (or being) one of ``inputs``; a non-empty folder without
    ``overwrite``; with it, one that holds anything but what ``stage`` writes (nothing of the user's is deleted)."""
    target = out.resolve()
    for given in inputs:
        if given.exists() and (target == given.resolve() or target in given.resolve().parents):
            raise InputError(f"{out} holds the weights or report being published: stage into another folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise InputError(f"{out} is not empty; pass --overwrite to replace a folder staged before")
        ours = {CONFIG_NAME, WEIGHTS_NAME, PROVENANCE_NAME, "README.md", *REPORT_FILES}
        other = [f.name for f in out.iterdir() if f.name not in ours and not (f.is_file() and f.suffix == ".png")]
        if other:
            raise InputError(f"{out} holds more than a staged folder ({', '.join(sorted(other)[:3])}): not replaced")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def upload(folder: str | os.PathLike, repo_id: str, *, private: bool = False, revision: str | None = None,
           message: str = "Upload x2face weights", token: str | None = None) -> str:
    """Create ``repo_id`` (if new) and upload ``folder`` to it (on branch ``revision``); returns the repo's URL.

    Raises:
        WeightsError: offline (``HF_HUB_OFFLINE``), no token, or the Hub refused (the reason in one line).
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise WeightsError("the Hub is offline here (HF_HUB_OFFLINE is set): nothing uploaded; --stage-only writes "
                           "the folder to upload later")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), revision=revision, commit_message=message)
    except Exception as exc:  # network, authentication, permissions: one line for the user
        raise WeightsError(f"could not publish to {repo_id}: {one_line(exc, 300)} (log in with `hf auth login` or "
                           f"set HF_TOKEN)") from exc
    return str(url)


def main(argv: list[str]) -> int:
    """``python -m x2face push WEIGHTS REPO_ID``; returns the exit code (errors are raised as X2FaceError)."""
    import tempfile

    p = argparse.ArgumentParser(prog="python -m x2face push", description="Publish x2face weights to the Hugging "
                                "Face Hub with a model card (config.json, model.safetensors, provenance, report).")
    p.add_argument("weights", help="weights folder (or 'demo', or a Hub repo id to copy)")
    p.add_argument("repo_id", help="the Hub repo to publish to, owner/name (created if new)")
    p.add_argument("--report", metavar="DIR", help="an evaluation folder (`python -m x2face evaluate --out DIR`) to "
                   "publish with the weights; its numbers go into the model card")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--revision", metavar="BRANCH", help="upload to this branch (created if new; default main)")
    p.add_argument("--license", help="license of the weights for the card's metadata (e.g. mit, cc-by-4.0)")
    p.add_argument("--message", default="Upload x2face weights", help="commit message")
    p.add_argument("--stage-only", metavar="DIR", help="write the folder that would be uploaded here, upload nothing")
    p.add_argument("--overwrite", action="store_true", help="replace what --stage-only DIR holds")
    args = p.parse_args(argv)
    if args.stage_only:
        out = stage(args.weights, args.repo_id, args.stage_only, report_dir=args.report, license=args.license,
                    overwrite=args.overwrite)
        names = ", ".join(sorted(f.name for f in out.iterdir()))
        print(f"x2face push: staged {out} ({names}); upload it with `python -m x2face push {out} {args.repo_id}`")
        return 0
    with tempfile.TemporaryDirectory(prefix="x2face-push-") as tmp:
        out = stage(args.weights, args.repo_id, Path(tmp) / "repo", report_dir=args.report, license=args.license)
        url = upload(out, args.repo_id, private=args.private, revision=args.revision, message=args.message)
    print(f"x2face push: published {args.weights} to {url}" + (f" (branch {args.revision})" if args.revision else ""))
    return 0


__all__ = ["REPORT_FILES", "TAGS", "main", "model_card", "stage", "upload"]
