"""Does the driving vector hold the head pose, linearly or at all? Probe it beside the evaluation's ridge map.

``pose_mae_deg`` in ``x2face.evaluate`` fits the paper's linear f_v->p (ridge, cross-validated) from driving
vectors of train identities to (yaw, pitch, roll) and scores it on test identities. This script takes the same
vectors (same seeds: its ridge numbers are the report's) and adds the same map's error on its own training
vectors (does it overfit?) and a non-linear probe, a two-layer MLP (scikit-learn, 256-256, early stopping):
if the MLP does much better, the pose is in the vector but not linearly; if not, the vector holds it coarsely.
It also says how much of the vector is used on the test frames: the units that are never (or under 5 % of the
time) above zero after the vector's ReLU, and the share of the vectors' variance in their top principal components.

    python benchmarks/pose_probe.py --weights demo --json benchmarks/results/cpu-pose-probe.json
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import finish, weights_parser  # noqa: E402

from x2face.data.synthetic import SyntheticWorld  # noqa: E402
from x2face.evaluate import (POSE_KEYS, EvalContext, EvalSettings, _driving_vectors,  # noqa: E402
                             _train_vectors, fit_linear)
from x2face.hub import load_model  # noqa: E402


def vector_usage(vectors: torch.Tensor) -> dict:
    """How much of the driving vector a set of vectors float [N, D] (post-ReLU, >= 0) uses: units never above
    zero, units above zero in under 5 % of them, and the variance share of the top 1 / 5 / 10 / 20 principal
    components."""
    active = (vectors > 0).double().mean(0)  # [D]: each unit's share of vectors where it is above zero
    s = torch.linalg.svdvals(vectors.double() - vectors.double().mean(0))  # [min(N, D)]
    share = (s**2).cumsum(0) / (s**2).sum().clamp(min=1e-30)  # [min(N, D)]
    return {
        "vector_dim": vectors.shape[1],
        "vector_units_never_active": int((active == 0).sum()),
        "vector_units_active_under_5pct": int((active < 0.05).sum()),
        "vector_pca_variance_share": {str(k): float(share[min(k, len(share)) - 1]) for k in (1, 5, 10, 20)},
    }


@torch.no_grad()
def main(argv: list[str] | None = None) -> dict:
    ap = weights_parser(__doc__)
    args = ap.parse_args(argv)
    from sklearn.neural_network import MLPRegressor
    from sklearn.preprocessing import StandardScaler

    t0 = time.time()
    model = load_model(args.weights, device="cpu").eval()
    ctx = EvalContext(model=model, world=SyntheticWorld(model.config.image_size), settings=EvalSettings(),
                      device=torch.device("cpu"))
    v_train, p_train = _train_vectors(ctx)  # [N, D], [N, 3] degrees
    v_test, p_test, _ = _driving_vectors(ctx, "test", ctx.settings.pose_test, "pose-test")
    ridge = fit_linear(v_train, p_train)
    scale = StandardScaler().fit(v_train.numpy())
    mlp = MLPRegressor(hidden_layer_sizes=(256, 256), max_iter=500, early_stopping=True, random_state=0)
    mlp.fit(scale.transform(v_train.numpy()), p_train.numpy())

    def mae(pred, truth) -> dict[str, float]:
        return dict(zip(POSE_KEYS, np.abs(np.asarray(pred) - np.asarray(truth)).mean(0).astype(float).tolist()))

    result = {
        "weights": args.weights, "train_vectors": len(v_train), "test_vectors": len(v_test),
        "ridge_test_mae_deg": mae(ridge(v_test), p_test),
        "ridge_train_mae_deg": mae(ridge(v_train), p_train),
        "mlp_test_mae_deg": mae(mlp.predict(scale.transform(v_test.numpy())), p_test),
        "mean_abs_pose_deg": dict(zip(POSE_KEYS, p_test.abs().mean(0).tolist())),
        **vector_usage(v_test),
        "seconds": round(time.time() - t0, 1),
    }
    return finish(result, "pose_probe.py", argv, args.json)


if __name__ == "__main__":
    main()
