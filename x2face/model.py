"""``X2Face``: the two networks, the warps between them, and weights on disk and on the Hugging Face Hub.

    >>> from x2face import X2Face, X2FaceConfig
    >>> model = X2Face(X2FaceConfig(image_size=64, base_channels=8)).eval()
    >>> sources = torch.rand(1, 3, 3, 64, 64)            # [B, K, 3, H, W] in [0, 1], K frames of one face
    >>> embedded = model.embed(sources)                    # [B, 3, H, W]
    >>> vector = model.driving_vector(torch.rand(1, 3, 64, 64))  # [B, 128]
    >>> frame = model.render(embedded, vector)             # [B, 3, H, W]

The caller picks device and dtype (``model.to(device, dtype)``); nothing here moves tensors.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn as nn
from huggingface_hub import PyTorchModelHubMixin

from .config import X2FaceConfig
from .control.audio import AudioMap
from .control.pose import PoseMaps
from .errors import ConfigError, InputError, WeightsError
from .nets import DrivingNetwork, EmbeddingNetwork
from .warp import flow_to_grid, warp

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class Embedding(NamedTuple):
    """What ``X2Face.embed_with_confidence`` returns.

    Attributes:
        face: embedded face, float [B, 3, S, S] in [0, 1].
        confidence: log of the total sampling weight per pixel, float [B, 1, S, S]; higher = more
            source evidence (``log(sum_i exp(c_i) + floor)``).
        carried: the ``carry`` images embedded alongside, float [B, C, S, S]; None without ``carry``.
    """

    face: torch.Tensor
    confidence: torch.Tensor
    carried: torch.Tensor | None = None


def _check_images(x: torch.Tensor, name: str, shape: str, rank: int, size: int, check_range: bool) -> None:
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor {shape}, got {type(x).__name__}")
    if x.dim() != rank:
        raise InputError(f"{name} must have shape {shape} (rank {rank}), got {list(x.shape)}")
    if not x.is_floating_point():
        raise InputError(f"{name} must be a float tensor in [0, 1], got dtype {x.dtype} (use x.float() / 255)")
    if x.shape[-3] != 3:
        raise InputError(f"{name} must have 3 RGB channels in dim {rank - 3}, got shape {list(x.shape)}")
    h, w = x.shape[-2:]
    if h != w:
        raise InputError(f"{name} must be square {size}x{size}, got {h}x{w} (crop with x2face.faces first)")
    if h != size:
        raise InputError(f"{name} must be {size}x{size} for this model, got {h}x{w} (resize or use x2face.faces)")
    if any(n == 0 for n in x.shape):
        raise InputError(f"{name} is empty: shape {list(x.shape)}")
    if check_range:
        lo, hi = torch.aminmax(x.detach())
        lo, hi = float(lo), float(hi)
        if not (lo >= 0.0 and hi <= 1.0):  # also catches NaN
            raise InputError(f"{name} values must lie in [0, 1], got min {lo:.4g}, max {hi:.4g}")


class X2Face(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="x2face",
    repo_url="https://github.com/x2face/x2face",
    paper_url="https://arxiv.org/abs/1807.10550",
    pipeline_tag="image-to-image",
    tags=["x2face", "face-reenactment", "talking-head"],
):
    """X2Face: an embedding network, a driving network and the bilinear samplers between them.

    ``forward(driving, sources) == render(embed(sources), driving_vector(driving))``.

    Attributes:
        config: the ``X2FaceConfig`` the networks were built from.
        embedding: ``EmbeddingNetwork`` (source frame -> offset + confidence).
        driving: ``DrivingNetwork`` (driving frame -> vector -> offset).
        pose: ``PoseMaps`` (f_v->p, f_p->v) when ``config.pose_head``.
        audio: ``AudioMap`` (f_a->v) when ``config.audio_head``.
        check_inputs: validate shapes and value range on every public call (costs one device sync);
            callers that already validated (the pipeline, benchmarks) may switch it off.
    """

    def __init__(self, config: X2FaceConfig | None = None) -> None:
        super().__init__()
        if config is None:
            config = X2FaceConfig()
        if not isinstance(config, X2FaceConfig):
            raise ConfigError(f"X2Face takes an X2FaceConfig, got {type(config).__name__}")
        self.config = config
        self.check_inputs = True
        self.embedding = EmbeddingNetwork(config)
        self.driving = DrivingNetwork(config)
        self.pose = PoseMaps(config.vector_dim) if config.pose_head else None
        self.audio = AudioMap(config.audio_feature_dim, config.vector_dim, config.audio_features) if config.audio_head else None

    # ------------------------------------------------------------------ the model
    def embed_with_confidence(self, sources: torch.Tensor, carry: torch.Tensor | None = None) -> Embedding:
        """Embed K source frames of one face into one embedded face.

        Args:
            sources: float [B, K, 3, S, S] in [0, 1], RGB, K >= 1 frames of the same face.
            carry: optional float [B, K, C, S, S] images aligned with the sources (e.g. blurred copies of
                them, as training's ``[stage] blur_sigmas`` uses), moved by the same warps and averaged with
                the same weights; returned as ``Embedding.carried``.

        Returns:
            ``Embedding(face [B, 3, S, S], confidence [B, 1, S, S], carried [B, C, S, S] or None)``. The
            frames are averaged per pixel with weights ``exp(c_i) + config.confidence_floor`` (computed stably).
        """
        size = self.config.image_size
        if self.check_inputs:
            _check_images(sources, "sources", f"[B, K, 3, {size}, {size}]", 5, size, True)
        b, k = sources.shape[:2]
        frames = sources.reshape(b * k, 3, size, size)  # [B, K, 3, S, S] -> [B*K, 3, S, S]
        c = 3
        if carry is not None:
            if carry.dim() != 5 or carry.shape[:2] != sources.shape[:2] or carry.shape[-2:] != sources.shape[-2:]:
                raise InputError(f"carry must be [B, K, C, {size}, {size}] like the sources "
                                 f"{list(sources.shape)}, got {list(carry.shape)}")
            c += carry.shape[2]
            frames_all = torch.cat([sources, carry.to(sources.dtype)], 2).reshape(b * k, c, size, size)  # -> [B*K, C+3, S, S]
        else:
            frames_all = frames
        out = self.embedding(frames)  # [B*K, 3, S, S]
        warped = warp(frames_all, self.embedding_grid(out))  # [B*K, 3 (+C), S, S]
        warped = warped.reshape(b, k, c, size, size)  # [B*K, c, S, S] -> [B, K, c, S, S]
        logits = out[:, 2:3].float().reshape(b, k, 1, size, size)  # [B*K, 1, S, S] -> [B, K, 1, S, S]
        weights, m = self._source_weights(logits)  # [B, K, 1, S, S], [B, 1, 1, S, S]
        total = weights.sum(dim=1)  # [B, 1, S, S]
        face = ((weights * warped.float()).sum(dim=1) / total).to(sources.dtype)  # [B, c, S, S]
        confidence = torch.log(total) + m.squeeze(1)  # [B, 1, S, S]
        return Embedding(face[:, :3], confidence, face[:, 3:] if carry is not None else None)

    def _source_weights(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Confidence logits float [B, K, 1, S, S] -> (weights exp(c_i) + floor, scaled by exp(-m) so that neither
        term overflows, [B, K, 1, S, S]; m, [B, 1, 1, S, S])."""
        m = logits.amax(dim=1, keepdim=True).clamp(min=0.0)  # [B, 1, 1, S, S]
        return torch.exp(logits - m) + self.config.confidence_floor * torch.exp(-m), m

    def embedding_maps(self, sources: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Where the embedded face comes from: for each of its pixels, the point of each source frame it samples
        and that frame's share. ``embed`` is the sum over k of ``shares[:, k] * warp(sources[:, k], grids[:, k])``.

        Args:
            sources: float [B, K, 3, S, S] in [0, 1], RGB.

        Returns:
            (grids float [B, K, S, S, 2] in normalised (x, y) units, shares float32 [B, K, 1, S, S] summing to 1
            over K).
        """
        size = self.config.image_size
        if self.check_inputs:
            _check_images(sources, "sources", f"[B, K, 3, {size}, {size}]", 5, size, True)
        b, k = sources.shape[:2]
        out = self.embedding(sources.reshape(b * k, 3, size, size))  # [B*K, 3, S, S]
        grids = self.embedding_grid(out).reshape(b, k, size, size, 2)  # [B*K, S, S, 2] -> [B, K, S, S, 2]
        weights, _ = self._source_weights(out[:, 2:3].float().reshape(b, k, 1, size, size))  # -> [B, K, 1, S, S]
        return grids, weights / weights.sum(dim=1, keepdim=True)

    def embed(self, sources: torch.Tensor) -> torch.Tensor:
        """sources: float [B, K, 3, S, S] in [0, 1] (RGB, K frames of one face) -> embedded face float [B, 3, S, S]."""
        return self.embed_with_confidence(sources).face

    def driving_vector(self, driving: torch.Tensor) -> torch.Tensor:
        """driving: float [B, 3, S, S] in [0, 1], RGB -> driving vector float [B, vector_dim], non-negative
        (the release's post-ReLU vector that pose and audio regress to)."""
        size = self.config.image_size
        if self.check_inputs:
            _check_images(driving, "driving", f"[B, 3, {size}, {size}]", 4, size, True)
        return self.driving.encode(driving)

    def render(self, embedded: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        """Sample the embedded face where the driving vector says.

        Args:
            embedded: float [B, 3, S, S] (or [1, 3, S, S], shared by all B vectors), normally in [0, 1].
            vector: float [B, vector_dim] driving vectors.

        Returns:
            generated frames, float [B, 3, S, S] in [0, 1] for embedded faces in [0, 1]; pixels that
            sample outside the embedded face are 0 (black), as in the release.
        """
        size, dim = self.config.image_size, self.config.vector_dim
        if self.check_inputs:
            _check_images(embedded, "embedded", f"[B, 3, {size}, {size}]", 4, size, False)
            if not isinstance(vector, torch.Tensor) or vector.dim() != 2 or vector.shape[1] != dim:
                got = list(vector.shape) if isinstance(vector, torch.Tensor) else type(vector).__name__
                raise InputError(f"vector must have shape [B, {dim}], got {got}")
            if embedded.shape[0] not in (1, vector.shape[0]):
                raise InputError(
                    f"embedded has batch {embedded.shape[0]} but vector has {vector.shape[0]}; use equal batches or 1 embedded face"
                )
        grid = self.driving_grid(vector)  # [B, S, S, 2]
        if embedded.shape[0] != grid.shape[0]:
            embedded = embedded.expand(grid.shape[0], -1, -1, -1)  # [1, 3, S, S] -> [B, 3, S, S]
        return warp(embedded, grid)

    @staticmethod
    def embedding_grid(embedding_output: torch.Tensor) -> torch.Tensor:
        """The embedding network's raw output float [N, 3, S, S] -> the grid that samples each source frame
        into the embedded face, float [N, S, S, 2] in normalised (x, y) units (channel 2, the confidence
        logit, is not used here)."""
        return flow_to_grid(torch.tanh(embedding_output[:, :2]))  # [N, 2, S, S] -> [N, S, S, 2]

    def driving_grid(self, vector: torch.Tensor) -> torch.Tensor:
        """vector: float [B, vector_dim] -> the grid that samples the embedded face, float [B, S, S, 2] in
        normalised (x, y) units (``warp(embedded, model.driving_grid(v))`` is ``model.render(embedded, v)``)."""
        offset = torch.tanh(self.driving.decode(vector))  # the release applies tanh a second time here
        return flow_to_grid(offset)  # [B, 2, S, S] -> [B, S, S, 2]

    def forward(self, driving: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        """driving float [B, 3, S, S], sources float [B, K, 3, S, S] (both RGB in [0, 1]) -> generated float [B, 3, S, S]."""
        return self.render(self.embed(sources), self.driving_vector(driving))

    def num_parameters(self) -> dict[str, int]:
        """Trainable parameter counts: ``{"embedding": n, "driving": n, "total": n}``."""
        emb = sum(p.numel() for p in self.embedding.parameters())
        drv = sum(p.numel() for p in self.driving.parameters())
        return {"embedding": emb, "driving": drv, "total": sum(p.numel() for p in self.parameters())}

    # ------------------------------------------------------------------ weights
    def _save_pretrained(self, save_directory: Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` (called by ``save_pretrained``/``push_to_hub``)."""
        from safetensors.torch import save_file

        save_directory = Path(save_directory)
        state = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()}
        tmp = save_directory / (WEIGHTS_NAME + ".tmp")
        save_file(state, str(tmp), metadata={"format": "pt", "library": "x2face"})
        os.replace(tmp, save_directory / WEIGHTS_NAME)
        (save_directory / CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        pretrained_model_name_or_path: str | Path,
        revision: str | None = None,
        *,
        map_location: str | torch.device = "cpu",
        strict: bool = True,
        cache_dir: str | Path | None = None,
        force_download: bool = False,
        local_files_only: bool = False,
        token: str | bool | None = None,
    ) -> "X2Face":
        """Load weights from a local folder or a Hub repo (``config.json`` + ``model.safetensors``).

        Args:
            pretrained_model_name_or_path: a folder, or a Hub repo id such as ``"user/x2face-vox"``.
            revision: Hub branch, tag or commit (ignored for folders).
            map_location: device the tensors are loaded onto (default CPU; move the model afterwards).
            strict: refuse weights with missing or unexpected tensors (default). ``strict=False``
                loads what matches and still refuses shape mismatches.

        Returns:
            the model in eval mode.

        Raises:
            WeightsError: files missing or unreadable, or tensors that do not fit the config (each named).
            ConfigError: a ``config.json`` with unknown keys or impossible values.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        source = str(pretrained_model_name_or_path)
        config_file, weights_file = _resolve_files(source, revision, cache_dir, force_download, local_files_only, token)
        try:
            config_data = json.loads(Path(config_file).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise WeightsError(f"cannot read {config_file}: {exc}") from exc
        config = X2FaceConfig.from_dict(config_data)
        model = cls(config)
        try:
            state = load_file(str(weights_file), device=str(map_location))
        except (OSError, SafetensorError, RuntimeError) as exc:
            raise WeightsError(f"cannot read {weights_file}: {exc}") from exc
        load_state_dict_checked(model, state, strict=strict, source=source)
        return model.eval()


def _resolve_files(source: str, revision: str | None, cache_dir, force_download: bool,
                   local_files_only: bool, token) -> tuple[Path, Path]:
    """Local folder or Hub repo id -> (config.json path, model.safetensors path)."""
    if os.path.isdir(source):
        folder = Path(source)
        files = (folder / CONFIG_NAME, folder / WEIGHTS_NAME)
        for f in files:
            if not f.is_file():
                raise WeightsError(f"{folder} is not an x2face weights folder: {f.name} is missing")
        return files
    if os.path.exists(source):
        raise WeightsError(f"{source} is a file; give the folder holding {CONFIG_NAME} and {WEIGHTS_NAME}")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HFValidationError

    paths = []
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        try:
            paths.append(Path(hf_hub_download(repo_id=source, filename=name, revision=revision, cache_dir=cache_dir,
                                              force_download=force_download, local_files_only=local_files_only,
                                              token=token)))
        except HFValidationError as exc:
            raise WeightsError(f"{source!r} is neither a folder nor a Hub repo id ('owner/name')") from exc
        except Exception as exc:  # network, auth, offline mode, missing file: a one-line message for a user
            raise WeightsError(_hub_error(source, name, revision, exc)) from exc
    return paths[0], paths[1]


def _hub_error(source: str, name: str, revision: str | None, exc: Exception) -> str:
    """What went wrong getting file ``name`` of Hub repo ``source``, in a line that says what to do."""
    from huggingface_hub import errors as hf

    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return f"cannot get {name} of {source!r}: HF_HUB_OFFLINE is set and it is not in the local cache"
    if isinstance(exc, hf.GatedRepoError):
        return (f"{source!r} is a gated repo: accept its terms on huggingface.co/{source}, then log in "
                f"(`hf auth login`, or set HF_TOKEN)")
    if isinstance(exc, hf.RepositoryNotFoundError):
        return f"no Hub repo {source!r} (or it is private: log in with `hf auth login`, or set HF_TOKEN)"
    if isinstance(exc, hf.RevisionNotFoundError):
        return f"{source!r} has no revision {revision!r} (a branch, tag or commit)"
    if isinstance(exc, hf.LocalEntryNotFoundError):
        return f"cannot reach the Hugging Face Hub for {source!r}, and its {name} is not in the local cache ({first})"
    if isinstance(exc, hf.EntryNotFoundError):
        return f"{source!r} has no {name}: it does not hold x2face weights ({CONFIG_NAME} + {WEIGHTS_NAME})"
    return f"cannot get {name} of {source!r}: {type(exc).__name__}: {first}"


def load_state_dict_checked(model: nn.Module, state: dict[str, torch.Tensor], *, strict: bool = True,
                            source: str = "weights") -> None:
    """Load ``state`` into ``model`` naming every missing, unexpected and mis-shaped tensor.

    Shape mismatches are always errors; missing/unexpected tensors are errors when ``strict``.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{k}: file {list(state[k].shape)} vs model {list(expected[k].shape)}"
        for k in set(state) & set(expected)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    if mismatched:
        problems.append("shape mismatch: " + "; ".join(mismatched))
    if strict and missing:
        problems.append("missing tensors: " + ", ".join(missing))
    if strict and unexpected:
        problems.append("unexpected tensors: " + ", ".join(unexpected))
    if problems:
        raise WeightsError(f"{source} does not match the X2Face config: " + " | ".join(problems))
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=strict)
