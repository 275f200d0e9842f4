"""OpenCV's Haar-cascade face detection in torch, for OpenCV builds without ``cv2.CascadeClassifier``.

OpenCV 5 dropped ``CascadeClassifier`` (it moved to opencv_contrib), and ``pip install face-alignment``
pulls ``opencv-python`` 5.x over the 4.x this project pins. The offline face detector must keep
working there, so ``x2face.faces.HaarDetector`` falls back to this module: it reads the same cascade
files (``x2face/cascades/*.xml``, OpenCV's own, Intel License Agreement in each file) and reproduces
``CascadeClassifier.detectMultiScale3(..., outputRejectLevels=True)`` of OpenCV 4.x, vectorised over
windows with torch (on the CPU, or on a GPU when given one):

* the image is resized for each scale (``INTER_LINEAR_EXACT``, as OpenCV does) and the fixed-size window
  slides in steps of 2 pixels (1 from scale 2 up), skipping one position after a window rejected by
  the first stage;
* each window is variance-normalised over its inner rectangle; a stage passes when the sum of its
  weak classifiers' (stumps' or trees') leaf values reaches the stage threshold;
* windows that pass every stage are grouped as ``cv::groupRectangles`` groups them (eps 0.2, more than
  ``min_neighbors`` members, small groups inside large ones dropped) and each group reports the
  highest final-stage sum of its members (OpenCV's ``levelWeights``).

On the project's photos the boxes and weights are OpenCV's (``tests/test_haar.py``). It is slower than
OpenCV's C++ on a CPU (see ``benchmarks/haar_speed.py``); the video tracker searches small windows
around the last face, where that matters little. ``cv2`` is only used for ``resize`` (present in every
OpenCV build).
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

#: The cascades x2face ships (copies of OpenCV 4.x's ``data/haarcascades``).
CASCADE_DIR = os.path.join(os.path.dirname(__file__), "cascades")
GROUP_EPS = 0.2  # cv::CascadeClassifier's grouping tolerance


def cascade_path(name: str) -> str:
    """Path of a bundled cascade, e.g. ``"frontalface_alt2"`` -> ``.../haarcascade_frontalface_alt2.xml``."""
    return os.path.join(CASCADE_DIR, f"haarcascade_{name}.xml")


@dataclass
class _Stage:
    threshold: np.float32
    feat: np.ndarray  # int [K, D]   feature index of each node of each weak classifier (D nodes at most)
    thr: np.ndarray  # float32 [K, D] node thresholds
    left: np.ndarray  # int [K, D]   next node (> 0) or -leaf index (<= 0) when value < threshold
    right: np.ndarray  # int [K, D]  the same when value >= threshold
    leaves: np.ndarray  # float32 [K, L]
    _on: dict = field(default_factory=dict, repr=False)  # device -> (thr, left, right, leaves) tensors

    def tensors(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        """``(thr, left, right, leaves)`` as tensors on ``device``, made once per device."""
        key = str(device)
        if key not in self._on:
            self._on[key] = tuple(torch.from_numpy(a).to(device) for a in (self.thr, self.left, self.right, self.leaves))
        return self._on[key]


class HaarCascade:
    """One OpenCV Haar cascade (new XML format, upright features), evaluated with torch.

    >>> cascade = HaarCascade(cascade_path("frontalface_alt2"))
    >>> boxes, weights = cascade.detect_multi_scale3(gray, 1.1, 3, (24, 24), (512, 512))
    """

    def __init__(self, path: str) -> None:
        try:
            root = ET.parse(path).getroot().find("cascade")
        except (OSError, ET.ParseError) as exc:
            raise ValueError(f"cannot read the Haar cascade {path}: {exc}") from exc
        if root is None or root.findtext("featureType", "").strip() != "HAAR":
            raise ValueError(f"{path} is not an OpenCV Haar cascade in the new XML format")
        self.width, self.height = int(root.findtext("width")), int(root.findtext("height"))
        rects = []
        for feat in root.find("features"):
            if int((feat.findtext("tilted") or "0").strip()):
                raise ValueError(f"{path}: tilted Haar features are not supported")
            r = np.zeros((3, 5), dtype=np.float64)  # (x, y, w, h, weight); weight 0 = unused
            for i, rect in enumerate(feat.find("rects")):
                r[i] = [float(v) for v in rect.text.split()]
            rects.append(r)
        self.rects = np.stack(rects)  # [F, 3, 5]
        self.stages: list[_Stage] = []
        for stage in root.find("stages"):
            nodes, leaves = [], []
            for weak in stage.find("weakClassifiers"):
                v = weak.findtext("internalNodes").split()
                nodes.append(np.array(v, dtype=np.float64).reshape(-1, 4))  # [D, (left, right, feat, thr)]
                leaves.append(np.array(weak.findtext("leafValues").split(), dtype=np.float32))
            d = max(n.shape[0] for n in nodes)
            k = len(nodes)
            st = _Stage(np.float32(float(stage.findtext("stageThreshold"))),
                        np.zeros((k, d), np.int64), np.zeros((k, d), np.float32), np.zeros((k, d), np.int64),
                        np.zeros((k, d), np.int64), np.zeros((k, d + 1), np.float32))
            for i, (n, lv) in enumerate(zip(nodes, leaves)):
                st.left[i, :len(n)], st.right[i, :len(n)] = n[:, 0], n[:, 1]
                st.feat[i, :len(n)], st.thr[i, :len(n)] = n[:, 2], n[:, 3]
                st.leaves[i, :len(lv)] = lv
            self.stages.append(st)
        # variance normalisation over the window's inner rectangle (1 pixel in from each side)
        self.norm = (1, 1, self.width - 2, self.height - 2)

    # ---------------------------------------------------------------- evaluation
    def _stage_sums(self, st: _Stage, ii: torch.Tensor, base: torch.Tensor, stride: int,
                    inv_nf: torch.Tensor, chunk: int = 1 << 15) -> torch.Tensor:
        """Sum of the stage's weak-classifier outputs, float32 [N], for N windows.

        ``ii`` is every scale's integral image, flattened one after another with rows ``stride`` apart
        (int32 or int64); window i's top-left corner is ``ii[base[i]]`` (int64 [N]); ``inv_nf`` float32 [N] is
        each window's 1 / (variance-normalisation factor).
        """
        dev = ii.device
        k, d = st.feat.shape
        r = self.rects[st.feat.reshape(-1)]  # [K*D, 3, 5] (x, y, w, h, weight)
        three = bool((r[:, 2, 4] != 0).any())
        nr = 3 if three else 2
        x, y, w, h = (r[:, :nr, i].astype(np.int64) for i in range(4))  # each [K*D, nr]
        corners = torch.from_numpy(np.stack([y * stride + x, y * stride + x + w, (y + h) * stride + x,
                                             (y + h) * stride + x + w], axis=-1)).to(dev)  # [K*D, nr, 4] offsets
        wts = torch.from_numpy(r[:, :, 4].astype(np.float32)).to(dev)  # [K*D, 3]
        out = torch.empty(base.shape[0], dtype=torch.float32, device=dev)
        for c0 in range(0, base.shape[0], chunk):
            b = base[c0:c0 + chunk]
            n = b.shape[0]
            p = torch.take(ii, b + corners[..., None])  # [K*D, nr, 4, n] integral values at the corners
            rs = (p[:, :, 3] - p[:, :, 1] - p[:, :, 2] + p[:, :, 0]).float()  # [K*D, nr, n] rectangle sums
            val = wts[:, 0, None] * rs[:, 0] + wts[:, 1, None] * rs[:, 1]  # OpenCV's float order
            if three:
                val = val + wts[:, 2, None] * rs[:, 2]
            val = (val * inv_nf[None, c0:c0 + chunk]).reshape(k, d, n)  # [K*D, n] -> [K, D, n]
            out[c0:c0 + chunk] = self._traverse(st, val)
        return out

    def _traverse(self, st: _Stage, val: torch.Tensor) -> torch.Tensor:
        """Stage sum float32 [n] from node values ``val`` float32 [K, D, n] (each weak classifier's tree walked)."""
        dev = val.device
        k, d, n = val.shape
        thr, left, right, leaves = st.tensors(dev)  # [K, D] x 3, [K, L]
        idx = torch.zeros((k, n), dtype=torch.int64, device=dev)  # node per (classifier, window); <= 0: leaf
        done = torch.zeros((k, n), dtype=torch.bool, device=dev)
        for _ in range(d):
            node = idx.clamp(min=0)  # [K, n]
            v = torch.gather(val, 1, node[:, None, :])[:, 0]  # [K, n] value of the current node
            nxt = torch.where(v < thr.gather(1, node), left.gather(1, node), right.gather(1, node))
            idx = torch.where(done, idx, nxt)
            done = done | (idx <= 0)
        return leaves.gather(1, -idx).sum(0)

    def _hits(self, gray: np.ndarray, factors: list[float], device: torch.device
              ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Windows that pass every stage, per scale: (x, y) int [M, 2] in that scale's pixels, final-stage sums [M].

        All scales are searched in one pass: their integral images are concatenated and each window
        carries its own row stride.
        """
        import cv2

        h, w = gray.shape
        sums, sqs, bases, grids = [], [], [], []
        stride = max(int(round(w / f)) for f in factors) + 1  # every scale's rows padded to one length
        offset = 0
        for factor in factors:
            sw, sh = max(int(round(w / factor)), 0), max(int(round(h / factor)), 0)
            nx, ny = sw + 1 - self.width, sh + 1 - self.height  # window positions x < nx, y < ny
            step = 1 if factor >= 2 else 2
            ys, xs = np.arange(0, max(ny, 0), step), np.arange(0, max(nx, 0), step)
            if len(ys) == 0 or len(xs) == 0:
                grids.append((0, 0, offset, 0))
                continue
            img = cv2.resize(gray, (sw, sh), interpolation=cv2.INTER_LINEAR_EXACT).astype(np.int64)
            ii = np.zeros((sh + 1, stride), np.int64)  # [sh+1, stride]: columns past sw+1 are never read
            ii[1:, 1:sw + 1] = img.cumsum(0).cumsum(1)
            sq = np.zeros((sh + 1, stride), np.int64)
            sq[1:, 1:sw + 1] = (img * img).cumsum(0).cumsum(1)
            sums.append(ii.reshape(-1))
            sqs.append(sq.reshape(-1))
            bases.append(offset + (ys[:, None] * stride + xs[None, :]).reshape(-1))  # row-major window grid
            grids.append((len(ys), len(xs), offset, ii.size))
            offset += ii.size
        if not bases:
            return [(np.zeros((0, 2), np.int64), np.zeros(0)) for _ in factors]
        ii_all = np.concatenate(sums)  # [sum over scales of (sh+1)*stride]
        # int32 where it fits (gathers 3x faster than int64): sums of up to 8.4 M pixels
        ii_t = torch.from_numpy(ii_all.astype(np.int32) if ii_all.max() < 2**31 else ii_all).to(device)
        sq_t = torch.from_numpy(np.concatenate(sqs)).to(device)
        base = torch.from_numpy(np.concatenate(bases)).to(device)  # [N] all windows of all scales
        nxr, nyr, nw, nh = self.norm
        area = float(nw * nh)
        c0 = base + nyr * stride + nxr
        c1, c2, c3 = c0 + nw, c0 + nh * stride, c0 + nh * stride + nw
        s_ = (torch.take(ii_t, c3) - torch.take(ii_t, c1) - torch.take(ii_t, c2) + torch.take(ii_t, c0)).double()
        q_ = (torch.take(sq_t, c3) - torch.take(sq_t, c1) - torch.take(sq_t, c2) + torch.take(sq_t, c0)).double()
        nf = area * q_ - s_ * s_
        inv = torch.where(nf > 0, 1.0 / nf.clamp(min=1e-300).sqrt(), torch.ones_like(nf)).float()  # [N]

        # stage 0 on every window, then OpenCV's scan order: a window rejected by stage 0 skips the next position
        first = self.stages[0]
        last = self._stage_sums(first, ii_t, base, stride, inv)
        rej0 = (last < first.threshold).cpu().numpy()
        alive_np = np.zeros_like(rej0)
        pos = 0
        for rows, cols, _, _ in grids:
            if rows == 0 or cols == 0:
                continue
            r = rej0[pos:pos + rows * cols].reshape(rows, cols)
            visited = np.ones_like(r)
            for c in range(1, cols):
                visited[:, c] = ~(visited[:, c - 1] & r[:, c - 1])
            alive_np[pos:pos + rows * cols] = (visited & ~r).reshape(-1)
            pos += rows * cols
        alive = torch.from_numpy(alive_np).to(device)
        b, inv, last = base[alive], inv[alive], last[alive]
        for stage in self.stages[1:]:
            if b.numel() == 0:
                break
            sums_ = self._stage_sums(stage, ii_t, b, stride, inv)
            keep = sums_ >= float(stage.threshold)
            b, inv, last = b[keep], inv[keep], sums_[keep]
        b_np, last_np = b.cpu().numpy(), last.double().cpu().numpy()
        out = []
        for _, _, off, size in grids:
            sel = (b_np >= off) & (b_np < off + size)
            local = b_np[sel] - off
            out.append((np.stack([local % stride, local // stride], axis=1), last_np[sel]))
        return out

    def detect_multi_scale3(self, gray: np.ndarray, scale_factor: float = 1.1, min_neighbors: int = 3,
                            min_size: tuple[int, int] = (0, 0), max_size: tuple[int, int] = (0, 0),
                            device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
        """Faces in a uint8 [H, W] grayscale image, as OpenCV 4's
        ``detectMultiScale3(gray, scale_factor, min_neighbors, 0, min_size, max_size, outputRejectLevels=True)``.

        Returns ``(boxes, weights)``: int [N, 4] (x, y, w, h) in ``gray``'s pixels and float [N], each
        group's highest final-stage sum (OpenCV's ``levelWeights``). ``max_size`` (0, 0) means no limit.
        ``device``: where the windows are evaluated (torch; a CUDA device runs the search on the GPU).
        """
        gray = np.ascontiguousarray(gray, dtype=np.uint8)
        if gray.ndim != 2:
            raise ValueError(f"a grayscale image [H, W] is needed, got shape {gray.shape}")
        h, w = gray.shape
        max_w, max_h = (max_size if max_size[0] > 0 and max_size[1] > 0 else (w, h))
        factors = []
        factor = 1.0
        while True:
            f32 = float(np.float32(factor))  # OpenCV keeps the scales as float
            ww, wh = int(round(self.width * f32)), int(round(self.height * f32))
            if ww > max_w or wh > max_h or ww > w or wh > h:
                break
            if ww >= min_size[0] and wh >= min_size[1]:
                factors.append(f32)
            factor *= scale_factor
        rects, weights = [], []
        if factors:
            for f32, (xy, lw) in zip(factors, self._hits(gray, factors, torch.device(device))):
                ww, wh = int(round(self.width * f32)), int(round(self.height * f32))
                for (x, y), v in zip(xy, lw):
                    rects.append((int(round(x * f32)), int(round(y * f32)), ww, wh))
                    weights.append(v)
        return group_rectangles(np.array(rects, dtype=np.int64).reshape(-1, 4), np.array(weights, np.float64),
                                min_neighbors, GROUP_EPS)


def group_rectangles(rects: np.ndarray, weights: np.ndarray, threshold: int, eps: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``cv::groupRectangles`` with level weights: int [N, 4] (x, y, w, h), float [N] -> grouped boxes, weights."""
    n = rects.shape[0]
    if n == 0 or threshold <= 0:
        return rects, weights
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    r = rects.astype(np.float64)
    x0, y0, x1, y1 = r[:, 0], r[:, 1], r[:, 0] + r[:, 2], r[:, 1] + r[:, 3]
    delta = eps * (np.minimum(r[:, None, 2], r[None, :, 2]) + np.minimum(r[:, None, 3], r[None, :, 3])) * 0.5
    similar = ((np.abs(x0[:, None] - x0[None]) <= delta) & (np.abs(y0[:, None] - y0[None]) <= delta)
               & (np.abs(x1[:, None] - x1[None]) <= delta) & (np.abs(y1[:, None] - y1[None]) <= delta))  # [N, N]
    ncls, labels = connected_components(csr_matrix(similar), directed=False)
    counts = np.bincount(labels, minlength=ncls)
    sums = np.zeros((ncls, 4), dtype=np.int64)
    np.add.at(sums, labels, rects)
    best = np.full(ncls, -np.inf)
    np.maximum.at(best, labels, weights)
    inv = (np.float32(1.0) / counts.astype(np.float32))[:, None]
    avg = np.rint(sums.astype(np.float32) * inv).astype(np.int64)  # [C, 4]
    out, out_w = [], []
    for i in range(ncls):
        n1 = counts[i]
        if n1 <= threshold:
            continue
        bx, by, bw, bh = avg[i]
        inside = False
        for j in range(ncls):
            n2 = counts[j]
            if j == i or n2 <= threshold:
                continue
            jx, jy, jw, jh = avg[j]
            dx, dy = int(round(jw * eps)), int(round(jh * eps))
            if (bx >= jx - dx and by >= jy - dy and bx + bw <= jx + jw + dx and by + bh <= jy + jh + dy
                    and (n2 > max(3, n1) or n1 < 3)):
                inside = True
                break
        if not inside:
            out.append(avg[i])
            out_w.append(best[i])
    return np.array(out, dtype=np.int64).reshape(-1, 4), np.array(out_w, dtype=np.float64)


@lru_cache(maxsize=None)
def load_cascade(name: str) -> HaarCascade:
    """A bundled cascade, parsed once per process (``name`` as in ``cascade_path``)."""
    return HaarCascade(cascade_path(name))
