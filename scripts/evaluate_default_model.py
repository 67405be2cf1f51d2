"""Acceptance of a generation model (the bundled default unless --model) on held-out synthetic identities.

Held-out identities (seeds >= 2,000,000, never trained on; a seed whose 256-px reference portrait has no
detectable face is skipped and the next one taken). For identity i: ref_i = its reference portrait, and
v_i = the video generated from ref_i with the prompt, action phrase and motion intensity of its synthetic
clip 0 (ground truth from `idvid.synth.clip_spec(seed_i, 0)`). Two stages: generate to WORK/videos/*.npz
(reused by a re-run with the same model files and settings), then score the files.

  identity gap  sim(ref, v) = mean over frames of v with a detected face of cos(SFace(ref), SFace(frame));
                gap = mean_i sim(ref_i, v_i) - mean_{i != j} sim(ref_j, v_i); the same on the rendered
                ground-truth clips; ratio = generated gap / ground-truth gap           (target >= 0.5)
  detection     fraction of all generated frames (identity and motion videos) with a face   (>= 0.9)
  facesim       facesim_arc[sface], ConsisID protocol (idvid.evaluate.facesim), mean over identities;
                with --baseline also the baseline's and the difference                (>= +0.15)
  attribute     fraction of identities whose prompt's clothing colour is rendered
                (idvid.evaluate.attributes), and the same check on the ground-truth clips   (>= 0.7)
  motion        for --motion-identities identities, one prompt each (their first clip with a non-static
                action, "slowly"/"quickly" removed so that only the intensity says how fast), generated at
                motion intensity 0, 5, 10, 20 with the same seed: mean optical-flow
                magnitude (idvid.evaluate.motion) per intensity, averaged; it should rise monotonically
  timing        `idvid generate --ref <held-out reference png> --prompt ... [--model DIR]` as a subprocess
                with the model's defaults: wall seconds and peak RSS              (<= 15 s, <= 3 GB)
  determinism   two in-process generations with the same seed give identical frames

    python scripts/evaluate_default_model.py [--model DIR] [--baseline DIR] --identities 16 \\
        --work /tmp/eval_default --json eval_default.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HELD_OUT_SEED = 2_000_000
VALIDATION_SEED = 1_000_000  # validation identities: for choosing sampling settings (guidance), never for figures
INTENSITIES = (0.0, 5.0, 10.0, 20.0)
TARGETS = {  # name: (target, ">=" or "<=")
    "identity_gap_ratio": (0.5, ">="),
    "face_detection_rate": (0.9, ">="),
    "facesim_gain_over_baseline": (0.15, ">="),
    "clothing_colour_rendered": (0.7, ">="),
    "motion_monotonic": (True, "=="),
    "generate_wall_s": (15.0, "<="),
    "generate_peak_rss_gb": (3.0, "<="),
    "deterministic": (True, "=="),
}


# ---------------------------------------------------------------------------------------- identity gap
def video_similarity(ref_embeddings: np.ndarray, frame_embeddings: np.ndarray) -> np.ndarray:
    """(R,) sim of each reference to one video: the mean over the video's face frames (rows without NaN)
    of the cosine between the reference and the frame embedding; NaN when no frame has a face."""
    ref = np.asarray(ref_embeddings, np.float64)
    emb = np.asarray(frame_embeddings, np.float64)
    emb = emb[~np.isnan(emb).any(axis=1)]
    if len(emb) == 0:
        return np.full(len(ref), np.nan)
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    return (ref @ emb.T).mean(axis=1)


def similarity_matrix(ref_embeddings: np.ndarray, video_embeddings: list[np.ndarray]) -> np.ndarray:
    """(R, V) S[j, i] = sim(ref_j, v_i) for references (R, D) and videos [(T_i, D) with NaN rows]."""
    return np.stack([video_similarity(ref_embeddings, e) for e in video_embeddings], axis=1)


def identity_gap(sim: np.ndarray) -> dict:
    """Identity gap of a square S[j, i] = sim(ref_j, v_i), where v_i was made from ref_i:
    same = mean_i S[i, i], different = mean_{i != j} S[j, i], gap = same - different.
    Videos without a face frame (NaN columns) are left out of both means."""
    sim = np.asarray(sim, np.float64)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1] or len(sim) < 2:
        raise ValueError(f"need a square similarity matrix of at least 2 x 2, got {sim.shape}")
    keep = ~np.isnan(sim).all(axis=0)
    diag = np.eye(len(sim), dtype=bool)
    same_vals = sim[diag & keep[None, :]]
    diff_vals = sim[~diag & keep[None, :]]
    if len(same_vals) == 0 or len(diff_vals) == 0:
        return {"same": None, "different": None, "gap": None, "videos": int(keep.sum())}
    same, diff = float(same_vals.mean()), float(diff_vals.mean())
    return {"same": same, "different": diff, "gap": same - diff, "videos": int(keep.sum())}


# ---------------------------------------------------------------------------------------- cases
@dataclass
class Case:
    seed: int
    reference: np.ndarray  # (256, 256, 3) uint8 reference portrait
    ref_embedding: np.ndarray  # (128,) SFace
    spec: object  # idvid.synth.ClipSpec of clip 0
    prompt: str
    action: str
    motion_intensity: float


def held_out_cases(seed_start: int, count: int, fa, size: int, num_frames: int) -> tuple[list[Case], list[int]]:
    """`count` held-out identities from `seed_start` whose reference has a face, with the prompt, action
    and motion intensity of their clip 0 rendered at `size` x `num_frames`; and the skipped seeds."""
    from idvid.synth import clip_spec, identity, render_clip, render_reference

    if seed_start < VALIDATION_SEED:
        raise SystemExit(f"--seed-start must be >= {VALIDATION_SEED} (validation, for tuning) or >= {HELD_OUT_SEED} "
                         f"(held-out, for acceptance figures), got {seed_start}: lower seeds are training identities")
    cases, skipped, seed = [], [], seed_start
    while len(cases) < count:
        ref = render_reference(identity(seed), 256)[0]
        faces = fa.detect(ref)
        if not faces:
            skipped.append(seed)
        else:
            spec = clip_spec(seed, 0)
            gt = render_clip(spec, size=size, num_frames=num_frames, pixels=False)
            cases.append(Case(seed, ref, fa.embed(ref, faces[0], model="sface"), spec, gt.prompt,
                              gt.action_phrase, float(gt.motion_intensity)))
        seed += 1
    return cases, skipped


def motion_prompt(seed: int) -> tuple[int, str, str]:
    """(clip index, prompt, action phrase) of the identity's first clip with a non-static action, without
    "slowly"/"quickly": the requested intensity alone says how fast (a prompt saying "slowly" with
    intensity 20 would ask for two speeds at once)."""
    from idvid.synth import clip_spec, render_clip
    from idvid.synth.prompts import strip_speed_words

    for k in range(32):
        spec = clip_spec(seed, k)
        if spec.motion.action != "static":
            clip = render_clip(spec, pixels=False)
            return k, strip_speed_words(clip.prompt), strip_speed_words(clip.action_phrase)
    raise RuntimeError(f"identity {seed}: no non-static clip among the first 32")


# ---------------------------------------------------------------------------------------- generation
def folder_fingerprint(folder: Path) -> str:
    """A hash of the names, sizes and modification times of every file in a model folder."""
    h = hashlib.sha1()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:12]


class Generator:
    """A pipeline that writes each video to WORK/videos/<name>-<hash of model files + settings>.npz and
    reads it back when it is already there."""

    def __init__(self, model: str | None, work: Path, tag: str, threads: int | None):
        from idvid.pipelines import default_model_path, load_pipeline

        self.pipe = load_pipeline(model, threads=threads)
        self.pipe.set_progress_bar_config(disable=True)
        folder = Path(model) if model is not None else default_model_path()
        self.fingerprint = folder_fingerprint(folder)
        self.dir = work / "videos" / tag
        self.dir.mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str, reference: np.ndarray, prompt: str, action: str, motion_intensity: float,
                 steps: int | None, seed: int) -> np.ndarray:
        settings = dict(model=self.fingerprint, prompt=prompt, action=action, intensity=motion_intensity,
                        steps=steps, seed=seed, ref=hashlib.sha1(reference.tobytes()).hexdigest()[:12])
        key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
        path = self.dir / f"{name}-{key}.npz"
        if path.is_file():
            return np.load(path)["frames"]
        out = self.pipe(reference, prompt, action=action, motion_intensity=motion_intensity,
                        num_inference_steps=steps, generator=seed)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, frames=out.frames, settings=json.dumps(settings))
        os.replace(tmp, path)
        return out.frames


# ---------------------------------------------------------------------------------------- scoring
@dataclass
class Scored:
    embeddings: np.ndarray  # (T, 128) SFace, NaN rows where no face
    boxes: list  # per-frame largest face box or None


def score_frames(frames: np.ndarray, fa) -> Scored:
    faces = fa.detect_frames(frames)
    emb = np.full((len(frames), 128), np.nan, np.float32)
    for t, fs in enumerate(faces):
        if fs:
            emb[t] = fa.embed_faces(frames[t], [fs[0]], model="sface")[0]
    return Scored(emb, [tuple(float(v) for v in fs[0].box) if fs else None for fs in faces])


def run_timing(case: Case, model: str | None, work: Path, steps: int | None) -> dict:
    """`idvid generate` as a subprocess: wall seconds and the child's peak RSS (os.wait4)."""
    from idvid.io import save_image

    ref_png = work / f"reference_{case.seed}.png"
    save_image(ref_png, case.reference)
    exe = shutil.which("idvid")
    cmd = [exe] if exe else [sys.executable, "-m", "idvid"]
    cmd += ["generate", "--ref", str(ref_png), "--prompt", case.prompt, "--out", str(work / "timing.mp4"), "-q"]
    if model is not None:
        cmd += ["--model", str(model)]
    if steps is not None:
        cmd += ["--steps", str(steps)]
    log = work / "timing.log"
    with open(log, "wb") as f:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS, not any earlier child's
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({proc.returncode}): {log.read_text()[-2000:]}")
    return {"command": shlex.join(cmd), "wall_s": wall, "peak_rss_gb": usage.ru_maxrss * 1024 / 1e9}


def verdict(value, target, op) -> bool | None:
    if value is None:
        return None
    return {">=": value >= target, "<=": value <= target, "==": value == target}[op]


def fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="pipeline folder to evaluate (default: the bundled default model)")
    ap.add_argument("--baseline", default=None, help="pipeline folder of a baseline for the FaceSim difference")
    ap.add_argument("--identities", type=int, default=16, help="held-out identities (default 16)")
    ap.add_argument("--seed-start", type=int, default=HELD_OUT_SEED, help="first identity seed: >= 2,000,000 held-out (acceptance figures, the default); "
                         "1,000,000-1,999,999 validation (to choose sampling settings)")
    ap.add_argument("--motion-identities", type=int, default=6, help="identities in the motion sweep (default 6)")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    ap.add_argument("--timing-steps", type=int, default=None,
                    help="--steps for the timed `idvid generate` (default: none, i.e. the model's default, "
                         "which is what the timing target is about)")
    ap.add_argument("--seed", type=int, default=0, help="generation seed of every video (default 0)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    ap.add_argument("--work", default="eval_default_work", help="folder for generated videos and the timing run")
    ap.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = ap.parse_args()
    if args.identities < 2:
        ap.error("--identities must be at least 2 (the identity gap compares identities)")

    from tqdm import tqdm

    from idvid.evaluate.attributes import check_clip_colours
    from idvid.evaluate.facesim import facesim
    from idvid.evaluate.motion import mean_flow_magnitude
    from idvid.faces import get_default_analyzer
    from idvid.synth import render_clip

    command = shlex.join(["python", *sys.argv])
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    fa = get_default_analyzer()
    gen = Generator(args.model, work, "model", args.threads)
    size, num_frames = gen.pipe.defaults.size, gen.pipe.defaults.num_frames
    cases, skipped = held_out_cases(args.seed_start, args.identities, fa, size, num_frames)
    m_count = min(args.motion_identities, len(cases))
    motion_cases = [(c, *motion_prompt(c.seed)) for c in cases[:m_count]]

    # ---- stage 1: generate (and render the ground truth)
    videos, gts, motion_videos, base_videos = [], [], {}, []
    for c in tqdm(cases, desc="identity videos"):
        videos.append(gen(f"{c.seed}_c000", c.reference, c.prompt, c.action, c.motion_intensity, args.steps, args.seed))
        gts.append(render_clip(c.spec, size=size, num_frames=num_frames, masks=False).frames)
    sweep = [(c, k, p, a, m) for c, k, p, a in motion_cases for m in INTENSITIES]
    for c, k, p, a, m in tqdm(sweep, desc="motion sweep"):
        motion_videos[(c.seed, m)] = gen(f"{c.seed}_c{k:03d}_m{m:g}", c.reference, p, a, m, args.steps, args.seed)
    if args.baseline is not None:
        base = Generator(args.baseline, work, "baseline", args.threads)
        for c in tqdm(cases, desc="baseline videos"):
            base_videos.append(base(f"{c.seed}_c000", c.reference, c.prompt, c.action, c.motion_intensity,
                                    args.steps, args.seed))
        del base
    c0 = cases[0]
    twice = [gen.pipe(c0.reference, c0.prompt, action=c0.action, motion_intensity=c0.motion_intensity,
                      num_inference_steps=args.steps, generator=args.seed).frames for _ in tqdm(range(2), desc="determinism")]
    deterministic = bool(np.array_equal(twice[0], twice[1]))
    del gen

    # ---- stage 2: score
    scored = [score_frames(v, fa) for v in tqdm(videos, desc="scoring videos")]
    scored_gt = [score_frames(v, fa) for v in tqdm(gts, desc="scoring ground truth")]
    refs = np.stack([c.ref_embedding for c in cases])
    gap_gen = identity_gap(similarity_matrix(refs, [s.embeddings for s in scored]))
    gap_gt = identity_gap(similarity_matrix(refs, [s.embeddings for s in scored_gt]))
    ratio = gap_gen["gap"] / gap_gt["gap"] if gap_gen["gap"] is not None and gap_gt["gap"] else None
    # the same ratio over later frames only: in decoupled mode frame 0 holds the reference's own head, so these
    # say how far the identity carries into the motion
    later = {}
    for name, start in (("frames_1_on", 1), ("second_half", num_frames // 2)):
        g = identity_gap(similarity_matrix(refs, [s.embeddings[start:] for s in scored]))
        t = identity_gap(similarity_matrix(refs, [s.embeddings[start:] for s in scored_gt]))
        later[name] = {"first_frame": start, "generated": g, "ground_truth": t,
                       "ratio": g["gap"] / t["gap"] if g["gap"] is not None and t["gap"] else None}

    motion_scored = {k: score_frames(v, fa) for k, v in tqdm(motion_videos.items(), desc="scoring motion")}
    face_rows = [s.embeddings for s in scored] + [s.embeddings for s in motion_scored.values()]
    detected = np.concatenate([~np.isnan(e).any(axis=1) for e in face_rows])

    fs_model = [facesim(c.reference, v, fa, model="sface") for c, v in zip(cases, videos, strict=True)]
    fs_base = [facesim(c.reference, v, fa, model="sface") for c, v in zip(cases, base_videos, strict=True)] \
        if base_videos else []
    facesim_model = float(np.mean([r.score for r in fs_model]))
    facesim_base = float(np.mean([r.score for r in fs_base])) if fs_base else None

    attr_gen = [check_clip_colours(v, c.spec, s.boxes) for c, v, s in zip(cases, videos, scored, strict=True)]
    attr_gt = [check_clip_colours(v, c.spec, s.boxes) for c, v, s in zip(cases, gts, scored_gt, strict=True)]

    def fraction(results, key):
        vals = [r[key].rendered for r in results if r[key] is not None]
        return (float(np.mean(vals)) if vals else None), len(vals)

    flow = {m: [mean_flow_magnitude(motion_videos[(c.seed, m)]) for c, *_ in motion_cases] for m in INTENSITIES}
    flow_mean = [float(np.mean(flow[m])) for m in INTENSITIES]
    monotonic = bool(all(b > a for a, b in zip(flow_mean[:-1], flow_mean[1:], strict=True)))
    per_identity_monotonic = float(np.mean([all(flow[b][i] > flow[a][i] for a, b in zip(INTENSITIES[:-1], INTENSITIES[1:], strict=True))
                                            for i in range(m_count)])) if m_count else None

    timing = run_timing(c0, args.model, work, args.timing_steps)

    clothing_gen, n_cloth = fraction(attr_gen, "clothing")
    clothing_gt, _ = fraction(attr_gt, "clothing")
    background_gen, n_bg = fraction(attr_gen, "background")
    background_gt, _ = fraction(attr_gt, "background")
    values = {
        "identity_gap_ratio": ratio,
        "face_detection_rate": float(detected.mean()),
        "facesim_gain_over_baseline": facesim_model - facesim_base if facesim_base is not None else None,
        "clothing_colour_rendered": clothing_gen,
        "motion_monotonic": monotonic,
        "generate_wall_s": timing["wall_s"],
        "generate_peak_rss_gb": timing["peak_rss_gb"],
        "deterministic": deterministic,
    }
    acceptance = {k: {"value": v, "target": f"{TARGETS[k][1]} {TARGETS[k][0]}", "pass": verdict(v, *TARGETS[k])}
                  for k, v in values.items()}
    out = {
        "command": command,
        "model": args.model or "bundled default",
        "baseline": args.baseline,
        "settings": {"identities": len(cases), "seeds": [c.seed for c in cases], "skipped_seeds": skipped,
                     "steps": args.steps, "seed": args.seed, "size": size, "frames": num_frames},
        "identity": {"generated": gap_gen, "ground_truth": gap_gt, "ratio": ratio, **later},
        "face_detection": {"rate": float(detected.mean()), "frames": int(detected.size)},
        "facesim": {"facesim_arc[sface]": facesim_model, "face_frames": float(np.mean([r.face_frames for r in fs_model])),
                    "baseline": facesim_base, "difference": values["facesim_gain_over_baseline"]},
        "attribute": {"clothing_rendered": clothing_gen, "clothing_cases": n_cloth, "clothing_ground_truth": clothing_gt,
                      "background_rendered": background_gen, "background_cases": n_bg,
                      "background_ground_truth": background_gt,
                      "per_case": [{"seed": c.seed, **{k: (r[k].to_dict() if r[k] else None) for k in r}}
                                   for c, r in zip(cases, attr_gen, strict=True)]},
        "motion": {"intensities": list(INTENSITIES), "mean_flow_px": flow_mean, "monotonic": monotonic,
                   "per_identity_monotonic": per_identity_monotonic,
                   "identities": [{"seed": c.seed, "clip": k, "prompt": p, "flow_px": [flow[m][i] for m in INTENSITIES]}
                                  for i, (c, k, p, _) in enumerate(motion_cases)]},
        "timing": timing,
        "determinism": {"identical": deterministic},
        "acceptance": acceptance,
    }

    rows = [
        ("identity gap generated (same - different)", gap_gen["gap"], ""),
        ("identity gap ground truth", gap_gt["gap"], ""),
        ("identity gap ratio generated / GT", ratio, "identity_gap_ratio"),
        ("  the same over frames 1..", later["frames_1_on"]["ratio"], ""),
        (f"  the same over frames {later['second_half']['first_frame']}..", later["second_half"]["ratio"], ""),
        (f"face detection rate ({detected.size} frames)", float(detected.mean()), "face_detection_rate"),
        ("facesim_arc[sface] model", facesim_model, ""),
        ("facesim_arc[sface] baseline", facesim_base, ""),
        ("facesim difference model - baseline", values["facesim_gain_over_baseline"], "facesim_gain_over_baseline"),
        (f"clothing colour rendered ({n_cloth} cases)", clothing_gen, "clothing_colour_rendered"),
        ("clothing colour check on GT clips", clothing_gt, ""),
        (f"background colour rendered ({n_bg} cases)", background_gen, ""),
        ("background colour check on GT clips", background_gt, ""),
        *((f"mean flow px @ intensity {m:g}", f, "") for m, f in zip(INTENSITIES, flow_mean, strict=True)),
        ("flow rises monotonically", monotonic, "motion_monotonic"),
        ("idvid generate wall s", timing["wall_s"], "generate_wall_s"),
        ("idvid generate peak RSS GB", timing["peak_rss_gb"], "generate_peak_rss_gb"),
        ("same seed, same frames", deterministic, "deterministic"),
    ]
    print(f"\n{command}\n")
    print(f"{'metric':<46} {'value':>9}  {'target':<9} pass")
    for name, value, key in rows:
        target = f"{TARGETS[key][1]} {TARGETS[key][0]}" if key else ""
        passed = fmt(acceptance[key]["pass"]) if key else ""
        print(f"{name:<46} {fmt(value):>9}  {target:<9} {passed}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
