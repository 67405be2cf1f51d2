#!/usr/bin/env python
"""Acceptance measurement for `idvid.synth`: are rendered faces faces, and distinct people, to real models?

For held-out identities (seed >= 2,000,000) this renders each identity's reference portrait and
`--clips` clips with the world's own action/appearance distribution, at every size in `--sizes`, then

* detection: YuNet on every clip frame; a frame counts as found when the largest detected face and the
  ground-truth face box agree: the detected centre lies inside the ground-truth box (grown by 10%) or the
  ground-truth centre lies inside the detected box. Reported per |yaw| bin: <= 45 deg and 45-75 deg.
* identity: SFace and dlib ResNet embeddings of the reference portrait and of every clip frame where a
  face was found (the detected face, aligned by its own keypoints); cosine similarity of every
  (frame, reference) pair; ROC AUC (sklearn.metrics.roc_auc_score) of same-identity vs
  different-identity pairs over all yaws, and the EER. Frames without a detection are left out (and
  counted in the detection rates). With --stride S only every S-th frame is embedded.

Targets (issue 2): detection >= 95% (|yaw| <= 45) and >= 80% (45 < |yaw| <= 75) at 128 and 256 px;
AUC SFace >= 0.95, dlib >= 0.90.

    python scripts/measure_synth.py --identities 50 --clips 2 --sizes 128,256 --json synth_acceptance.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time

import numpy as np

BINS = ((0.0, 45.0), (45.0, 75.0))
FINE_BINS = ((0, 15), (15, 30), (30, 45), (45, 60), (60, 75))


def _analyse_identity(task: tuple) -> dict:
    """Render one identity's reference and clips at one size; detect and embed with both models."""
    seed, clips, size, frames, fps, stride, models = task
    from idvid.faces import FaceAnalyzer
    from idvid.synth import clip_spec, identity, render_clip, render_reference

    fa = _analyzer(FaceAnalyzer)
    ref, _ = render_reference(identity(seed), size)
    ref_faces = fa.detect(ref)
    out = {"seed": seed, "ref_found": bool(ref_faces), "yaw": [], "found": [], **{m: [] for m in models}}
    if ref_faces:
        for m in models:
            out[f"ref_{m}"] = fa.embed(ref, ref_faces[0], model=m).tolist()
    for k in range(clips):
        clip = render_clip(clip_spec(seed, k), size, frames, fps, masks=False)
        for t in range(frames):
            img = clip.frames[t]
            faces = fa.detect(img)
            x0, y0, x1, y1 = clip.face_boxes[t]
            gx, gy = 0.1 * (x1 - x0), 0.1 * (y1 - y0)
            ok = False
            if faces:
                cx, cy = faces[0].center
                bx0, by0, bx1, by1 = faces[0].box
                tx, ty = (x0 + x1) / 2, (y0 + y1) / 2
                ok = ((x0 - gx <= cx <= x1 + gx) and (y0 - gy <= cy <= y1 + gy)) or (bx0 <= tx <= bx1 and by0 <= ty <= by1)
            out["yaw"].append(float(abs(clip.poses[t, 0])))
            out["found"].append(bool(ok))
            for m in models:  # embeddings on every stride-th frame only (they are the slow part)
                out[m].append(fa.embed(img, faces[0], model=m).tolist() if ok and t % stride == 0 else None)
    return out


_FA = None


def _analyzer(cls):
    global _FA
    if _FA is None:
        _FA = cls(detector="yunet", embedder="sface", threads=1)
    return _FA


def _roc(same: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import roc_auc_score, roc_curve

    auc = float(roc_auc_score(same, score))
    fpr, tpr, _ = roc_curve(same, score)
    i = int(np.nanargmin(np.abs(fpr - (1 - tpr))))
    return auc, float((fpr[i] + 1 - tpr[i]) / 2)


def summarise(results: list[dict], models: tuple[str, ...] = ("sface", "dlib")) -> dict:
    yaw = np.concatenate([r["yaw"] for r in results])
    found = np.concatenate([r["found"] for r in results]).astype(bool)
    summary: dict = {"frames": int(yaw.size), "references_found": float(np.mean([r["ref_found"] for r in results]))}
    for lo, hi in BINS:
        m = (yaw > lo) & (yaw <= hi) if lo > 0 else yaw <= hi
        summary[f"detect_yaw_{int(lo)}_{int(hi)}"] = float(found[m].mean()) if m.any() else float("nan")
        summary[f"frames_yaw_{int(lo)}_{int(hi)}"] = int(m.sum())
    summary["detect_fine"] = {
        f"{lo}-{hi}": round(float(found[(yaw > lo) & (yaw <= hi) | ((lo == 0) & (yaw == 0))].mean()), 4)
        for lo, hi in FINE_BINS if ((yaw > lo) & (yaw <= hi)).any()
    }
    usable = [r for r in results if r["ref_found"]]
    for model in models:
        refs = np.array([r[f"ref_{model}"] for r in usable])
        rows, ids, yaws = [], [], []
        for j, r in enumerate(usable):
            for e, y in zip(r[model], r["yaw"], strict=True):
                if e is not None:
                    rows.append(e)
                    ids.append(j)
                    yaws.append(y)
        emb = np.array(rows)
        sim = emb @ refs.T  # (frames, identities) cosine (embeddings are unit vectors)
        same = np.array(ids)[:, None] == np.arange(len(usable))[None, :]
        auc, eer = _roc(same.ravel(), sim.ravel())
        yaws = np.array(yaws)
        per_bin = {}
        for lo, hi in FINE_BINS:
            m = (yaws > lo) & (yaws <= hi) | ((lo == 0) & (yaws == 0))
            if m.any():
                per_bin[f"{lo}-{hi}"] = round(_roc(same[m].ravel(), sim[m].ravel())[0], 4)
        summary[model] = {"auc": auc, "eer": eer, "same_mean": float(sim[same].mean()),
                          "diff_mean": float(sim[~same].mean()), "pairs": int(sim.size), "auc_by_yaw": per_bin}
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--identities", type=int, default=50)
    ap.add_argument("--clips", type=int, default=2, help="clips per identity")
    ap.add_argument("--seed", type=int, default=2_000_000, help="first identity seed (held-out: >= 2000000)")
    ap.add_argument("--sizes", default="128,256")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--fps", type=float, default=8.0)
    ap.add_argument("--stride", type=int, default=1,
                    help="embed every STRIDE-th frame (detection always runs on every frame)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--models", default="sface,dlib", help="embedders to score (sface, dlib)")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    if args.seed < 2_000_000:
        ap.error("acceptance is measured on held-out identities: --seed must be >= 2000000")
    report = {"settings": vars(args), "sizes": {}}
    ctx = mp.get_context("spawn")
    models = tuple(args.models.split(","))
    for size in [int(s) for s in args.sizes.split(",")]:
        t0 = time.perf_counter()
        tasks = [(args.seed + i, args.clips, size, args.frames, args.fps, args.stride, models)
                 for i in range(args.identities)]
        if args.workers > 1:
            with ctx.Pool(args.workers) as pool:
                results = pool.map(_analyse_identity, tasks, chunksize=1)
        else:
            results = [_analyse_identity(t) for t in tasks]
        s = summarise(results, models)
        s["seconds"] = round(time.perf_counter() - t0, 1)
        report["sizes"][str(size)] = s
        print(f"size {size}: {s['frames']} frames, references found {s['references_found']:.0%} ({s['seconds']} s)")
        for lo, hi in BINS:
            key = f"detect_yaw_{int(lo)}_{int(hi)}"
            print(f"  YuNet detection |yaw| in ({lo:.0f}, {hi:.0f}]: {s[key]:.3f} of {s[f'frames_yaw_{int(lo)}_{int(hi)}']} frames")
        print(f"  detection by yaw: {s['detect_fine']}")
        for model in models:
            m = s[model]
            print(f"  {model}: AUC {m['auc']:.4f}  EER {m['eer']:.4f}  same {m['same_mean']:.3f}  "
                  f"diff {m['diff_mean']:.3f}  AUC by yaw {m['auc_by_yaw']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
