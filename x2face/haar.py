"""OpenCV's Haar-cascade face detection in numba or torch, for OpenCV builds without ``cv2.CascadeClassifier``.

OpenCV 5 dropped ``CascadeClassifier`` (it moved to opencv_contrib), and ``pip install face-alignment``
pulls ``opencv-python`` 5.x over the 4.x this project pins. The offline face detector must keep
working there, so ``x2face.faces.HaarDetector`` falls back to this module: it reads the same cascade
files (``x2face/cascades/*.xml``, OpenCV's own, Intel License Agreement in each file) and reproduces
``CascadeClassifier.detectMultiScale3(..., outputRejectLevels=True)`` of OpenCV 4.x, either with OpenCV's own
loop compiled by numba (``_scan``: window by window, stopping at the first failed stage; the rows of windows
split over threads; what runs on the CPU where numba imports, and numba comes with librosa) or vectorised over
windows with torch (every surviving window through each stage at once; on a GPU when given one):

* the image is resized for each scale (``INTER_LINEAR_EXACT``, as OpenCV does) and the fixed-size window
  slides in steps of 2 pixels (1 from scale 2 up), skipping one position after a window rejected by
  the first stage, over the rows OpenCV's stripes cover (sized from the first scale; at some scales
  they end before the last row);
* each window is variance-normalised over its inner rectangle (a window whose standard deviation is 10
  grey levels or less is rejected outright, as OpenCV's ``setWindow`` does); a stage passes when the sum
  of its weak classifiers' (stumps' or trees') leaf values reaches the stage threshold (less 1e-5, as
  OpenCV reads it);
* windows that pass every stage are grouped as ``cv::groupRectangles`` groups them (eps 0.2, more than
  ``min_neighbors`` members, small groups inside large ones dropped) and each group reports the
  highest final-stage sum of its members (OpenCV's ``levelWeights``).

On the project's photos the boxes and weights are OpenCV's (``tests/test_haar.py``, both ways). On the 2-core
CPU the numba scan tracks a face about 1.3x slower than OpenCV's C++ and the torch one about 10x slower
(``benchmarks/haar_speed.py``). ``cv2`` is only used for ``resize`` and ``integral2`` (in every OpenCV build).
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


@dataclass
class _Pyramid:
    ii: np.ndarray  # int64 [P] every scale's integral image, rows ``stride`` apart, one scale after another
    sq: np.ndarray  # int64 [P] the same of the squared pixels
    stride: int
    grids: list[tuple[int, int, int, int, int]]  # per scale: window rows, columns, step, offset in ii, size


class HaarCascade:
    """One OpenCV Haar cascade (new XML format, upright features), evaluated by numba (CPU) or torch (any device).

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
            # OpenCV lowers every stage threshold by THRESHOLD_EPS = 1e-5 (in float) when it reads a cascade
            threshold = np.float32(float(stage.findtext("stageThreshold"))) - np.float32(1e-5)
            st = _Stage(threshold,
                        np.zeros((k, d), np.int64), np.zeros((k, d), np.float32), np.zeros((k, d), np.int64),
                        np.zeros((k, d), np.int64), np.zeros((k, d + 1), np.float32))
            for i, (n, lv) in enumerate(zip(nodes, leaves)):
                st.left[i, :len(n)], st.right[i, :len(n)] = n[:, 0], n[:, 1]
                st.feat[i, :len(n)], st.thr[i, :len(n)] = n[:, 2], n[:, 3]
                st.leaves[i, :len(lv)] = lv
            self.stages.append(st)
        # variance normalisation over the window's inner rectangle (1 pixel in from each side)
        self.norm = (1, 1, self.width - 2, self.height - 2)
        self._flat_cache: tuple[np.ndarray, ...] | None = None

    # ---------------------------------------------------------------- evaluation
    def _offsets(self, stride: int) -> tuple[np.ndarray, np.ndarray]:
        """Offsets from a window's top-left corner into integral images with rows ``stride`` apart, each
        rectangle's corners in the order top-left, top-right, bottom-left, bottom-right (its sum is
        ``ii[3] - ii[1] - ii[2] + ii[0]``): every feature's three rectangles, int64 [F, 3, 4] (unused ones
        0), and the variance-normalisation rectangle's, int64 [4]."""
        norm = np.zeros((1, 3, 4))
        norm[0, 0] = self.norm
        rect = np.concatenate([self.rects[:, :, :4], norm])  # [F+1, 3, 4]: the features, then the norm rectangle
        x, y, w, h = (rect[..., i].astype(np.int64) for i in range(4))  # each [F+1, 3]
        corners = np.stack([y * stride + x, y * stride + x + w, (y + h) * stride + x, (y + h) * stride + x + w],
                           axis=-1)  # [F+1, 3, 4]
        return corners[:-1], corners[-1, 0]

    def _stage_sums(self, st: _Stage, ii: torch.Tensor, base: torch.Tensor, offsets: np.ndarray,
                    inv_nf: torch.Tensor, chunk: int = 1 << 15) -> torch.Tensor:
        """Sum of the stage's weak-classifier outputs, float32 [N], for N windows.

        ``ii`` is every scale's integral image, flattened one after another (int32 or int64); window i's
        top-left corner is ``ii[base[i]]`` (int64 [N]); ``offsets`` are the features' corner offsets from there
        (``_offsets``, int64 [F, 3, 4]); ``inv_nf`` float32 [N] is each window's 1 / (variance-normalisation
        factor).
        """
        dev = ii.device
        k, d = st.feat.shape
        r = self.rects[st.feat.reshape(-1)]  # [K*D, 3, 5] (x, y, w, h, weight)
        three = bool((r[:, 2, 4] != 0).any())
        nr = 3 if three else 2
        corners = torch.from_numpy(offsets[st.feat.reshape(-1), :nr]).to(dev)  # [K*D, nr, 4] offsets
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

    def _pyramid(self, gray: np.ndarray, factors: list[float]) -> _Pyramid | None:
        """Every scale's integral and squared-integral image, flattened one after another, and the window grid
        of each scale (OpenCV's steps: 2 pixels below scale 2, 1 from there). None when no window fits.

        OpenCV scans each scale in ``nstripes`` horizontal stripes (its threads' work units) of
        ``stripe`` rows: ``nstripes`` comes from the first scale's width, ``stripe`` is rounded to the
        step, and rows past ``nstripes * stripe`` are never scanned (the last row of a scale can be
        skipped); the grid here keeps that.
        """
        import cv2

        h, w = gray.shape
        sums, sqs, grids = [], [], []
        stride = max(int(round(w / f)) for f in factors) + 1  # every scale's rows padded to one length
        nstripes = -(-(int(round(w / factors[0])) + 1 - self.width) // 32)  # ceil(first scale's columns / 32)
        offset = 0
        for factor in factors:
            sw, sh = max(int(round(w / factor)), 0), max(int(round(h / factor)), 0)
            nx, ny = sw + 1 - self.width, sh + 1 - self.height  # window positions x < nx, y < ny
            step = 1 if factor >= 2 else 2
            stripe = max((max(ny, 0) // step + nstripes - 1) // max(nstripes, 1), 1) * step
            ny = min(ny, nstripes * stripe)
            rows, cols = len(range(0, max(ny, 0), step)), len(range(0, max(nx, 0), step))
            if rows == 0 or cols == 0:
                grids.append((0, 0, step, offset, 0))
                continue
            img = cv2.resize(gray, (sw, sh), interpolation=cv2.INTER_LINEAR_EXACT)
            s_, q_ = cv2.integral2(img, sdepth=cv2.CV_32S, sqdepth=cv2.CV_64F)  # [sh+1, sw+1], first row/column 0
            ii = np.zeros((sh + 1, stride), np.int64)  # [sh+1, stride]: columns past sw+1 are never read
            ii[:, :sw + 1] = s_
            sq = np.zeros((sh + 1, stride), np.int64)
            sq[:, :sw + 1] = q_  # whole numbers below 2**53: exact
            sums.append(ii.reshape(-1))  # [sh+1, stride] -> [(sh+1)*stride]
            sqs.append(sq.reshape(-1))
            grids.append((rows, cols, step, offset, ii.size))
            offset += ii.size
        if not sums:
            return None
        return _Pyramid(np.concatenate(sums), np.concatenate(sqs), stride, grids)

    def _split(self, pyr: _Pyramid, b_np: np.ndarray, last_np: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Passing windows (flat base indices ``b_np``, final-stage sums ``last_np``) per scale, as (x, y) and sums."""
        out = []
        for _, _, _, off, size in pyr.grids:
            sel = (b_np >= off) & (b_np < off + size)
            local = b_np[sel] - off
            out.append((np.stack([local % pyr.stride, local // pyr.stride], axis=1), last_np[sel]))
        return out

    def _hits(self, gray: np.ndarray, factors: list[float], device: torch.device
              ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Windows that pass every stage, per scale: (x, y) int [M, 2] in that scale's pixels, final-stage sums [M].

        All scales are searched in one pass with torch (on ``device``): their integral images are concatenated
        and each window carries its own offset into them.
        """
        pyr = self._pyramid(gray, factors)
        if pyr is None:
            return [(np.zeros((0, 2), np.int64), np.zeros(0)) for _ in factors]
        stride = pyr.stride
        bases = [off + (np.arange(0, rows * step, step)[:, None] * stride
                        + np.arange(0, cols * step, step)[None, :]).reshape(-1)  # row-major window grid
                 for rows, cols, step, off, _ in pyr.grids if rows and cols]
        # int32 where it fits (gathers 3x faster than int64): sums of up to 8.4 M pixels
        ii_t = torch.from_numpy(pyr.ii.astype(np.int32) if pyr.ii.max() < 2**31 else pyr.ii).to(device)
        sq_t = torch.from_numpy(pyr.sq).to(device)
        base = torch.from_numpy(np.concatenate(bases)).to(device)  # [N] all windows of all scales
        offsets, norm = self._offsets(stride)
        area = float(self.norm[2] * self.norm[3])
        c0, c1, c2, c3 = (base + int(o) for o in norm)
        s_ = (torch.take(ii_t, c3) - torch.take(ii_t, c1) - torch.take(ii_t, c2) + torch.take(ii_t, c0)).double()
        q_ = (torch.take(sq_t, c3) - torch.take(sq_t, c1) - torch.take(sq_t, c2) + torch.take(sq_t, c0)).double()
        nf = area * q_ - s_ * s_
        inv = torch.where(nf > 0, 1.0 / nf.clamp(min=1e-300).sqrt(), torch.ones_like(nf)).float()  # [N]
        valid = ((nf > 0) & (area * inv.double() < 0.1)).cpu().numpy()  # OpenCV's setWindow: flat windows fail

        # stage 0 on every window, then OpenCV's scan order: a window rejected by stage 0 skips the next position
        first = self.stages[0]
        last = self._stage_sums(first, ii_t, base, offsets, inv)
        rej0 = (last < first.threshold).cpu().numpy() & valid  # rejected by stage 0 (a flat window is not: no skip)
        alive_np = np.zeros_like(rej0)
        pos = 0
        for rows, cols, _, _, _ in pyr.grids:
            if rows == 0 or cols == 0:
                continue
            r = rej0[pos:pos + rows * cols].reshape(rows, cols)
            visited = np.ones_like(r)
            for c in range(1, cols):
                visited[:, c] = ~(visited[:, c - 1] & r[:, c - 1])
            alive_np[pos:pos + rows * cols] = (visited & ~r).reshape(-1) & valid[pos:pos + rows * cols]
            pos += rows * cols
        alive = torch.from_numpy(alive_np).to(device)
        b, inv, last = base[alive], inv[alive], last[alive]
        for stage in self.stages[1:]:
            if b.numel() == 0:
                break
            sums_ = self._stage_sums(stage, ii_t, b, offsets, inv)
            keep = sums_ >= float(stage.threshold)
            b, inv, last = b[keep], inv[keep], sums_[keep]
        return self._split(pyr, b.cpu().numpy(), last.double().cpu().numpy())

    def _flat(self) -> tuple[np.ndarray, ...]:
        """The cascade as flat arrays for the compiled scan (made once): per stage its threshold and first
        classifier; per classifier its nodes (feature, threshold, left, right) and leaves; per feature its
        rectangles' weights (their corners depend on the image: ``_offsets``)."""
        if self._flat_cache is None:
            d = max(st.feat.shape[1] for st in self.stages)
            nl = max(st.leaves.shape[1] for st in self.stages)

            def pad(a: np.ndarray, width: int) -> np.ndarray:
                return np.pad(a, ((0, 0), (0, width - a.shape[1])))

            begin = np.cumsum([0] + [st.feat.shape[0] for st in self.stages]).astype(np.int64)  # [S+1]
            self._flat_cache = (
                np.array([st.threshold for st in self.stages], np.float32), begin,
                np.concatenate([pad(st.feat, d) for st in self.stages]),  # [C, D] int64
                np.concatenate([pad(st.thr, d) for st in self.stages]),  # [C, D] float32
                np.concatenate([pad(st.left, d) for st in self.stages]),
                np.concatenate([pad(st.right, d) for st in self.stages]),
                np.concatenate([pad(st.leaves, nl) for st in self.stages]),  # [C, L] float32
                np.ascontiguousarray(self.rects[:, :, 4], dtype=np.float32))  # [F, 3] rectangle weights
        return self._flat_cache

    def _hits_compiled(self, gray: np.ndarray, factors: list[float]) -> list[tuple[np.ndarray, np.ndarray]]:
        """``_hits`` on the CPU with the numba-compiled scan (``_scan``): OpenCV's loop, window by window with
        early rejection, instead of every stage on every surviving window at once. Same windows and sums."""
        pyr = self._pyramid(gray, factors)
        if pyr is None:
            return [(np.zeros((0, 2), np.int64), np.zeros(0)) for _ in factors]
        st_thr, begin, feat, thr, left, right, leaves, wts = self._flat()
        s = pyr.stride
        corners, norm = self._offsets(s)
        corners = np.ascontiguousarray(corners).reshape(len(corners), 12)  # [F, 3, 4] -> [F, 12]
        rows = [(off + r * step * s, cols, step) for rows_, cols, step, off, _ in pyr.grids for r in range(rows_)]
        row_base = np.array([r[0] for r in rows], np.int64)
        row_cols = np.array([r[1] for r in rows], np.int64)
        row_step = np.array([r[2] for r in rows], np.int64)
        row_first = np.concatenate([[0], np.cumsum(row_cols)]).astype(np.int64)  # [R+1] output slot of each row
        passed = np.zeros(int(row_first[-1]), np.bool_)
        score = np.zeros(int(row_first[-1]), np.float64)
        ii = pyr.ii.astype(np.int32) if pyr.ii.max() < 2**31 else pyr.ii  # int32 where it fits: half the memory traffic
        args = (ii, pyr.sq, row_base, row_cols, row_step, row_first, norm, float(self.norm[2] * self.norm[3]), corners,
                wts, st_thr, begin, feat, thr, left, right, leaves, passed, score)
        # rows split over threads (the compiled scan releases the GIL), interleaved so each gets every scale
        n = max(1, min(torch.get_num_threads(), len(rows) // 4, int(row_first[-1]) // 1024))
        order = np.arange(len(rows), dtype=np.int64)
        if n == 1:
            _scan()(order, *args)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(n) as pool:
                parts = [np.ascontiguousarray(order[i::n]) for i in range(n)]  # contiguous: the compiled signature
                list(pool.map(lambda part: _scan()(part, *args), parts))
        idx = np.flatnonzero(passed)
        r = np.searchsorted(row_first, idx, side="right") - 1  # the row of each passing window
        b_np = row_base[r] + (idx - row_first[r]) * row_step[r]
        return self._split(pyr, b_np, score[idx])

    def detect_multi_scale3(self, gray: np.ndarray, scale_factor: float = 1.1, min_neighbors: int = 3,
                            min_size: tuple[int, int] = (0, 0), max_size: tuple[int, int] = (0, 0),
                            device: torch.device | str = "cpu", compiled: bool | None = None
                            ) -> tuple[np.ndarray, np.ndarray]:
        """Faces in a uint8 [H, W] grayscale image, as OpenCV 4's
        ``detectMultiScale3(gray, scale_factor, min_neighbors, 0, min_size, max_size, outputRejectLevels=True)``.

        Returns ``(boxes, weights)``: int [N, 4] (x, y, w, h) in ``gray``'s pixels and float [N], each
        group's highest final-stage sum (OpenCV's ``levelWeights``). ``max_size`` (0, 0) means no limit.
        ``compiled``: scan the windows with the numba-compiled CPU loop (``_scan``) instead of torch on
        ``device`` (a CUDA device runs the torch search on the GPU); None: compiled where ``device`` is the
        CPU and numba imports. Both give the same boxes and weights.
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
        dev = torch.device(device)
        if compiled is None:
            compiled = dev.type == "cpu" and compiled_available()
        if factors:
            hits = self._hits_compiled(gray, factors) if compiled else self._hits(gray, factors, dev)
            for f32, (xy, lw) in zip(factors, hits):
                ww, wh = int(round(self.width * f32)), int(round(self.height * f32))
                for (x, y), v in zip(xy, lw):
                    rects.append((int(round(x * f32)), int(round(y * f32)), ww, wh))
                    weights.append(v)
        return group_rectangles(np.array(rects, dtype=np.int64).reshape(-1, 4), np.array(weights, np.float64),
                                min_neighbors, GROUP_EPS)


@lru_cache(maxsize=None)
def compiled_available() -> bool:
    """Whether numba (a librosa dependency, so installed with x2face) imports and compiles the CPU scan: the
    first call compiles it for the types ``_hits_compiled`` passes (or loads it from numba's disk cache)."""
    try:
        i64, f32 = np.zeros((1, 1), np.int64), np.zeros((1, 1), np.float32)
        _scan()(np.zeros(0, np.int64), np.zeros(1, np.int32), np.zeros(1, np.int64), i64[0], i64[0], i64[0], i64[0],
                np.zeros(4, np.int64), 1.0, np.zeros((1, 12), np.int64), np.zeros((1, 3), np.float32), f32[0],
                i64[0], i64, f32, i64, i64, f32, np.zeros(1, np.bool_), np.zeros(1, np.float64))  # no rows: no work
    except Exception:  # numba missing, failing to import (e.g. a NumPy it does not support) or to compile
        return False
    return True


@lru_cache(maxsize=None)
def _scan():
    """The cascade scan compiled by numba (once per process; cached on disk where the package folder is writable).

    For each row of windows in ``rows``: OpenCV's ``CascadeClassifierInvoker`` loop. Each window is
    variance-normalised, then its stages run in order, each weak classifier's tree walked node by node
    (only the nodes on its path are computed) and the leaves summed in double as OpenCV does, stopping at
    the first stage whose sum is under its threshold; a window rejected by stage 0 skips the next position.
    Node values are OpenCV's float sums of weighted rectangle sums times 1 / normalisation factor.
    """
    import numba

    def scan(rows, ii, sq, row_base, row_cols, row_step, row_first, norm, area, corners, wts, st_thr, begin, feat,
             thr, left, right, leaves, passed, score):  # pragma: no cover - compiled
        n_stages = st_thr.shape[0]
        for r in rows:
            x = 0
            while x < row_cols[r]:
                b = row_base[r] + x * row_step[r]
                s_ = float(ii[b + norm[3]] - ii[b + norm[1]] - ii[b + norm[2]] + ii[b + norm[0]])
                q_ = float(sq[b + norm[3]] - sq[b + norm[1]] - sq[b + norm[2]] + sq[b + norm[0]])
                nf = area * q_ - s_ * s_
                inv = np.float32(1.0 / np.sqrt(nf)) if nf > 0 else np.float32(1.0)
                if not (nf > 0 and area * inv < 0.1):  # OpenCV's setWindow: a (nearly) flat window is no face
                    x += 1
                    continue
                level = 0
                total = 0.0
                while level < n_stages:
                    total = 0.0
                    for c in range(begin[level], begin[level + 1]):
                        node = 0
                        while True:
                            f = feat[c, node]
                            r0 = (ii[b + corners[f, 3]] - ii[b + corners[f, 1]] - ii[b + corners[f, 2]]
                                  + ii[b + corners[f, 0]])  # rectangle sums from the integral image
                            r1 = (ii[b + corners[f, 7]] - ii[b + corners[f, 5]] - ii[b + corners[f, 6]]
                                  + ii[b + corners[f, 4]])
                            val = wts[f, 0] * np.float32(r0) + wts[f, 1] * np.float32(r1)
                            if wts[f, 2] != 0:
                                r2 = (ii[b + corners[f, 11]] - ii[b + corners[f, 9]] - ii[b + corners[f, 10]]
                                      + ii[b + corners[f, 8]])
                                val = val + wts[f, 2] * np.float32(r2)
                            val = val * inv
                            nxt = left[c, node] if val < thr[c, node] else right[c, node]
                            if nxt <= 0:
                                total += leaves[c, -nxt]
                                break
                            node = nxt
                    if total < st_thr[level]:
                        break
                    level += 1
                if level == n_stages:
                    passed[row_first[r] + x] = True
                    score[row_first[r] + x] = total
                x += 2 if level == 0 else 1
        return 0

    try:
        return numba.njit(cache=True, nogil=True, error_model="numpy")(scan)
    except RuntimeError:  # no writable cache location (a read-only install without a home folder): compile each run
        return numba.njit(cache=False, nogil=True, error_model="numpy")(scan)


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
