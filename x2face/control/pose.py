"""Drive a face with a head pose: the maps f_v->p, f_p->v and the vector arithmetic of section 4.1.

Pose is ``(yaw, pitch, roll)`` in degrees throughout x2face (the release used radians in the order
roll, pitch, yaw; ``x2face.convert`` translates its files). Signs follow ``x2face.data.synthetic``:
positive yaw turns the face to the image's right, positive pitch raises it, positive roll tilts the
top of the head to the image's right.

* f_v->p: a linear layer with bias from the driving vector to the pose, trained with an L1 loss
  (``fit_vector_to_pose``: least squares, then iteratively reweighted least squares, which
  minimises the L1 loss exactly).
* f_p->v: a linear layer and a BatchNorm from the pose to the driving vector. As in the paper it is
  fitted on driving vectors and the poses f_v->p gives them (``fit_pose_to_vector``): least squares
  of v on f_v->p(v), with the BatchNorm holding the data's statistics, which is what training it
  with an L2 loss converges to. Fitted this way, ``f_v->p(f_p->v(a) - f_p->v(b)) = a - b``: moving a
  vector by the arithmetic below moves its pose exactly as asked, as f_v->p reads it.
* To drive a face with a pose, it is driven "with itself" and its own vector moved:
  ``v = v_src + f_p->v(p_new) - f_p->v(p_src)``, ``p_src = f_v->p(v_src)`` (``PoseMaps.repose``; the
  difference form of the paper's ``v_src + f_p->v(p_new - p_src)``, because of the BatchNorm).

``python -m x2face fit-pose`` (``x2face.control.fit``) fits both on pose-labelled frames and stores
them with the model's weights (``X2Face.pose``); ``drive_pose`` and ``pose_sweep`` use them on an
``X2FacePipeline``.
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn

from ..errors import InputError, WeightsError

POSE_NAMES = ("yaw", "pitch", "roll")
#: largest |angle| drive_pose accepts, per axis (degrees): beyond it the linear maps only extrapolate
POSE_RANGE = (90.0, 60.0, 60.0)
#: default sweep amplitudes per axis (degrees), about the range the maps are fitted on
SWEEP_AMPLITUDE = {"yaw": 45.0, "pitch": 25.0, "roll": 25.0}


class PoseMaps(nn.Module):
    """f_v->p (Linear with bias, trained with L1) and f_p->v (Linear without bias + BatchNorm1d).

    The linear layer of f_p->v has no bias (as in the release): the BatchNorm that follows has one.
    """

    def __init__(self, vector_dim: int = 128) -> None:
        super().__init__()
        self.to_pose = nn.Linear(vector_dim, 3)
        self.from_pose = nn.Sequential(nn.Linear(3, vector_dim, bias=False), nn.BatchNorm1d(vector_dim))

    def vector_to_pose(self, vector: torch.Tensor) -> torch.Tensor:
        """f_v->p: driving vectors float [B, D] -> pose float [B, 3] (yaw, pitch, roll) in degrees."""
        return self.to_pose(vector)

    def pose_to_vector(self, pose: torch.Tensor) -> torch.Tensor:
        """f_p->v: pose float [B, 3] (yaw, pitch, roll) in degrees -> driving vectors float [B, D]."""
        return self.from_pose(pose)

    def repose(self, vector: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        """Move a driving vector to a new head pose by the paper's vector arithmetic.

        ``v_new = v_src + f_p->v(p_new) - f_p->v(f_v->p(v_src))``: the difference form of
        ``v_src + f_p->v(p_new - p_src)``, which the release used because the BatchNorm in f_p->v
        adds a constant that must cancel.

        Args:
            vector: float [B, D] driving vectors of the source frames.
            pose: float [B, 3] (or [1, 3]) target (yaw, pitch, roll) in degrees.

        Returns:
            float [B, D] driving vectors.
        """
        pose = pose.to(vector.dtype).expand(vector.shape[0], 3)
        return vector + self.pose_to_vector(pose) - self.pose_to_vector(self.vector_to_pose(vector))


# ------------------------------------------------------------------------------------------------ fitting
def _as_float64(x, name: str, cols: int | None = None) -> np.ndarray:
    a = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if a.ndim != 2 or (cols is not None and a.shape[1] != cols):
        raise InputError(f"{name} must be [N, {cols if cols is not None else 'D'}], got {list(a.shape)}")
    if not np.isfinite(a).all():
        raise InputError(f"{name} contains NaN or infinite values")
    return a


def fit_vector_to_pose(vectors, poses, *, iterations: int = 60, ridge: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """f_v->p by least absolute deviations (the paper's L1 loss), per angle.

    Starts from least squares and runs iteratively reweighted least squares (weights ``1 / |residual|``),
    which converges to the L1 minimiser; ``ridge`` (relative to the mean vector energy) keeps dead
    vector dimensions from making the system singular.

    Args:
        vectors: float [N, D] driving vectors.
        poses: float [N, 3] (yaw, pitch, roll) in degrees.

    Returns:
        ``(weight [3, D], bias [3])`` float64 numpy arrays: ``pose = vectors @ weight.T + bias``.
    """
    v = _as_float64(vectors, "vectors")
    p = _as_float64(poses, "poses", 3)
    if v.shape[0] != p.shape[0] or v.shape[0] < 2:
        raise InputError(f"need the same number (>= 2) of vectors and poses, got {v.shape[0]} and {p.shape[0]}")
    x = np.concatenate([v, np.ones((v.shape[0], 1))], 1)  # [N, D+1]
    reg = ridge * max(float((v**2).mean()), 1e-12) * np.eye(x.shape[1])
    reg[-1, -1] = 0.0
    coef = np.linalg.solve(x.T @ x + reg * x.shape[0], x.T @ p)  # [D+1, 3] least squares start
    eps = 1e-3  # degrees: residuals below this count as this (keeps the weights bounded)
    for _ in range(iterations):
        r = np.abs(p - x @ coef)  # [N, 3]
        new = np.empty_like(coef)
        for j in range(3):
            w = 1.0 / np.maximum(r[:, j], eps)  # [N]
            xw = x * w[:, None]
            new[:, j] = np.linalg.solve(x.T @ xw + reg * w.sum(), xw.T @ p[:, j])
        if np.abs(new - coef).max() < 1e-7:
            coef = new
            break
        coef = new
    return coef[:-1].T.copy(), coef[-1].copy()


def fit_pose_to_vector(poses, vectors) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """f_p->v = Linear(3, D, no bias) + BatchNorm1d(D), fitted by least squares of ``vectors`` on ``poses``.

    The BatchNorm gets the running mean and variance of the linear layer's outputs on the data (what
    training leaves in it) and its affine part is set so that in eval mode
    ``f_p->v(p) = A p + b`` with ``(A, b)`` the least-squares solution.

    Args:
        poses: float [N, 3] poses (for the paper's recipe: f_v->p of ``vectors``).
        vectors: float [N, D] driving vectors.

    Returns:
        ``(linear_weight [D, 3], bn_weight [D], bn_bias [D], running_mean [D], running_var [D])`` float64.
    """
    p = _as_float64(poses, "poses", 3)
    v = _as_float64(vectors, "vectors")
    if p.shape[0] != v.shape[0] or p.shape[0] < 4:
        raise InputError(f"need the same number (>= 4) of poses and vectors, got {p.shape[0]} and {v.shape[0]}")
    x = np.concatenate([p, np.ones((p.shape[0], 1))], 1)  # [N, 4]
    coef = np.linalg.lstsq(x, v, rcond=None)[0]  # [4, D]
    a, b = coef[:3].T, coef[3]  # [D, 3], [D]
    z = p @ a.T  # [N, D] the linear layer's outputs
    mean, var = z.mean(0), z.var(0)
    eps = 1e-5  # nn.BatchNorm1d's
    gamma = np.sqrt(var + eps)  # undoes the normalisation ...
    beta = b + mean  # ... and restores the mean the running statistics remove
    return a, gamma, beta, mean, var


def fit_pose_maps(vectors, poses, *, vector_dim: int | None = None, iterations: int = 60) -> PoseMaps:
    """Fit f_v->p (L1) on (vector, pose) pairs, then f_p->v on the vectors and f_v->p's poses of them.

    Args:
        vectors: float [N, D] driving vectors.
        poses: float [N, 3] (yaw, pitch, roll) in degrees of the same frames.

    Returns:
        ``PoseMaps`` in eval mode (CPU, float32).
    """
    v = _as_float64(vectors, "vectors")
    w, c = fit_vector_to_pose(v, poses, iterations=iterations)
    predicted = v @ w.T + c  # [N, 3] the paper trains f_p->v on f_v->p's poses
    a, gamma, beta, mean, var = fit_pose_to_vector(predicted, v)
    maps = PoseMaps(vector_dim or v.shape[1])
    t = lambda x: torch.from_numpy(np.asarray(x)).float()  # noqa: E731
    with torch.no_grad():
        maps.to_pose.weight.copy_(t(w))
        maps.to_pose.bias.copy_(t(c))
        maps.from_pose[0].weight.copy_(t(a))
        bn = maps.from_pose[1]
        bn.weight.copy_(t(gamma))
        bn.bias.copy_(t(beta))
        bn.running_mean.copy_(t(mean))
        bn.running_var.copy_(t(var))
        bn.num_batches_tracked.fill_(1)
    return maps.eval()


def pose_errors(maps: PoseMaps, vectors: torch.Tensor, poses: torch.Tensor) -> dict[str, float]:
    """Mean absolute error (degrees) of f_v->p per angle: vectors float [N, D], poses float [N, 3]."""
    with torch.no_grad():
        err = (maps.vector_to_pose(vectors.float()) - poses.float()).abs().mean(0)
    return dict(zip(POSE_NAMES, map(float, err)))


# ------------------------------------------------------------------------------------------------ driving
def as_pose(pose: Sequence[float] | np.ndarray | torch.Tensor, name: str = "pose") -> torch.Tensor:
    """Validate (yaw, pitch, roll) in degrees: 3 finite numbers within ``POSE_RANGE`` -> float [1, 3]."""
    t = torch.as_tensor(np.asarray(pose.detach().cpu() if isinstance(pose, torch.Tensor) else pose, dtype=np.float64))
    if t.numel() != 3:
        raise InputError(f"{name} must be 3 angles (yaw, pitch, roll) in degrees, got {list(t.shape)}")
    t = t.reshape(1, 3).float()  # [3] (any layout of 3 numbers) -> [1, 3]
    if not torch.isfinite(t).all():
        raise InputError(f"{name} angles must be finite numbers, got {t.tolist()[0]}")
    for i, (axis, limit) in enumerate(zip(POSE_NAMES, POSE_RANGE)):
        if abs(float(t[0, i])) > limit:
            raise InputError(f"{axis} must be within +-{limit:.0f} degrees, got {float(t[0, i]):.1f}")
    return t


def _maps(model) -> PoseMaps:
    maps = getattr(model, "pose", None)
    if maps is None:
        raise WeightsError("these weights have no pose head; fit one with `python -m x2face fit-pose --weights W --out OUT`")
    return maps


def pose_vectors(model, v_src: torch.Tensor, poses: torch.Tensor) -> torch.Tensor:
    """Driving vectors that give the source face the head poses ``poses``.

    Args:
        model: an ``X2Face`` with a pose head (``model.pose``).
        v_src: float [1, D] (or [B, D]) driving vector(s) of the source frame(s).
        poses: float [T, 3] (yaw, pitch, roll) in degrees.

    Returns:
        float [T, D]: ``v_src + f_p->v(p) - f_p->v(f_v->p(v_src))`` per pose.
    """
    maps = _maps(model)
    poses = poses.to(v_src.device, v_src.dtype)
    return maps.repose(v_src.expand(poses.shape[0], -1) if v_src.shape[0] == 1 else v_src, poses)


def source_pose(pipeline) -> tuple[float, float, float]:
    """The pose f_v->p reads from the pipeline's source frame: (yaw, pitch, roll) in degrees."""
    maps = _maps(pipeline.model)
    with torch.inference_mode():
        p = maps.vector_to_pose(pipeline.source_vector())[0]
    return tuple(float(x) for x in p)  # type: ignore[return-value]


def drive_pose(pipeline, yaw: float, pitch: float, roll: float, *, paste_back: bool = False) -> np.ndarray:
    """The source face of ``pipeline`` at head pose (yaw, pitch, roll), in degrees.

    Args:
        pipeline: an ``X2FacePipeline`` with a source set and a model with a pose head.
        yaw, pitch, roll: degrees (positive yaw turns the face to the image's right, positive pitch
            raises it, positive roll tilts it clockwise), within ``POSE_RANGE``.
        paste_back: put the face back into the source photo (else the model-size crop).

    Returns:
        one frame, uint8 [S, S, 3] RGB (or [H, W, 3] with ``paste_back``).
    """
    pose = as_pose((yaw, pitch, roll))
    with torch.inference_mode():
        v = pose_vectors(pipeline.model, pipeline.source_vector(), pose)
    return next(iter(pipeline.drive_vectors(v, paste_back=paste_back)))


def sweep_poses(start: Sequence[float], axis: str, amplitude: float | None = None, num_frames: int = 75) -> torch.Tensor:
    """Poses of a sweep along one axis: from ``start``'s angle to +amplitude, to -amplitude, and back.

    The other two angles stay at ``start``'s (the paper's Fig. 6 varies one angle at a time).

    Args:
        start: (yaw, pitch, roll) in degrees, usually the source's own pose.
        axis: ``"yaw"``, ``"pitch"`` or ``"roll"``.
        amplitude: the extreme angle, degrees (default ``SWEEP_AMPLITUDE[axis]``).
        num_frames: T >= 2.

    Returns:
        float [T, 3] poses in degrees (piecewise linear in time).
    """
    if axis not in POSE_NAMES:
        raise InputError(f"the sweep axis must be one of {', '.join(POSE_NAMES)}, got {axis!r}")
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 2:
        raise InputError(f"num_frames must be an int >= 2, got {num_frames!r}")
    k = POSE_NAMES.index(axis)
    amp = SWEEP_AMPLITUDE[axis] if amplitude is None else float(amplitude)
    if not math.isfinite(amp) or not 0 < amp <= POSE_RANGE[k]:
        raise InputError(f"the {axis} amplitude must be in (0, {POSE_RANGE[k]:.0f}] degrees, got {amplitude}")
    base = as_pose(start, "start")[0]
    a0 = float(base[k])
    keys = np.array([0.0, 0.25, 0.75, 1.0])
    vals = np.array([a0, amp, -amp, a0])
    t = np.linspace(0.0, 1.0, num_frames)
    out = base.repeat(num_frames, 1)
    out[:, k] = torch.from_numpy(np.interp(t, keys, vals)).float()
    return out


def pose_sweep(pipeline, axis: str = "yaw", amplitude: float | None = None, num_frames: int = 75, *,
               paste_back: bool = False, batch_size: int = 16) -> Iterator[np.ndarray]:
    """Frames of the source face turning along one axis (``sweep_poses`` from its own pose).

    Returns:
        an iterator of ``num_frames`` uint8 RGB frames, [S, S, 3] or [H, W, 3] with ``paste_back``
        (at 25 fps the default is 3 s).
    """
    return drive_poses(pipeline, sweep_poses(source_pose(pipeline), axis, amplitude, num_frames),
                       paste_back=paste_back, batch_size=batch_size)


def pose_path(start: Sequence[float], targets: Sequence[Sequence[float]], frames_per_move: int = 25,
              hold: int = 12) -> torch.Tensor:
    """Poses moving linearly from ``start`` through each of ``targets`` (``frames_per_move`` frames each),
    then holding the last one ``hold`` frames: float [T, 3] degrees."""
    if not targets:
        raise InputError("give at least one target pose")
    if frames_per_move < 1 or hold < 0:
        raise InputError("frames_per_move must be >= 1 and hold >= 0")
    keys = [as_pose(start, "start")[0]] + [as_pose(t, "target pose")[0] for t in targets]
    out = [keys[0][None]]
    for a, b in zip(keys[:-1], keys[1:]):
        w = torch.linspace(0.0, 1.0, frames_per_move + 1)[1:, None]  # [F, 1]
        out.append(a + (b - a) * w)
    out.append(keys[-1][None].repeat(hold, 1))
    return torch.cat(out)


def drive_poses(pipeline, poses: torch.Tensor, *, paste_back: bool = False, batch_size: int = 16) -> Iterator[np.ndarray]:
    """Frames of the source face at each of ``poses`` (float [T, 3] degrees), streamed in batches."""
    if not isinstance(poses, torch.Tensor) or poses.dim() != 2 or poses.shape[1] != 3:
        raise InputError(f"poses must be a float tensor [T, 3], got {getattr(poses, 'shape', type(poses).__name__)}")
    _maps(pipeline.model)
    with torch.inference_mode():
        v_src = pipeline.source_vector()
    bs = max(1, int(batch_size))
    for i in range(0, poses.shape[0], bs):
        with torch.inference_mode():
            v = pose_vectors(pipeline.model, v_src, poses[i:i + bs])
        yield from pipeline.drive_vectors(v, paste_back=paste_back, batch_size=bs)


__all__ = ["POSE_NAMES", "POSE_RANGE", "PoseMaps", "SWEEP_AMPLITUDE", "as_pose", "drive_pose", "drive_poses",
           "fit_pose_maps", "fit_pose_to_vector", "fit_vector_to_pose", "pose_errors", "pose_path", "pose_sweep",
           "pose_vectors", "source_pose", "sweep_poses"]
