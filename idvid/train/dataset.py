"""Training data for the identity video model: the synthetic world, streamed or pre-rendered.

Items are addressed by `(epoch, index)` (see `idvid.train.trainer.DataPosition`) and are a pure function
of that key, whichever DataLoader worker renders them — which is what makes a resumed run see exactly
the batches an uninterrupted one would. One item (`__getitem__`) is a dict of:

    frames          (T, H, W, 3) uint8    the clip (an image item: one frame repeated T times)
    face_mask       (T, H, W) bool        per-frame face masks (perceptual / region-aware losses)
    face_boxes      (T, 4) float32        per-frame face boxes x0, y0, x1, y1 (ID-consistency crops)
    flow_fg         (T, H, W) float16     foreground optical-flow magnitude (Eq. 6 maps), if data.flow_maps
    reference       (H, W, 3) uint8       the identity's reference portrait (global ID latent)
    face_crop       (112, 112, 3) uint8   its face aligned to the ArcFace template
    face_embedding  (128,) float32        its SFace embedding (computed once, cached)
    prompt, action_phrase   str
    motion_intensity        float32 scalar (ground truth; 0 for image items)
    is_image, identity_seed, clip_index

Sources
-------
* "synth": clips rendered on the fly from identity seeds [seed_start, seed_start + num_identities), clip
  indices [0, clips_per_identity) (or a new set of clip indices every epoch with `new_clips_each_epoch`).
* "folder": an `idvid synth` output folder (manifest.parquet, clips/*.mp4, refs/*.png, masks/*.npz when
  rendered with --save-masks; without masks an ellipse in the ground-truth face box stands in).

Training never sees identities of the validation or held-out splits: every constructor checks the seeds
and raises `InputError` for any seed >= 1,000,000 in a training set (and for any seed outside
[1,000,000, 2,000,000) in a validation set).

Image-video joint training (MotionCharacter §3.4): with probability `image_ratio`, drawn per (epoch,
index), an item is a static image: one frame of the clip repeated T times, motion intensity 0, and the
prompt / action phrase of the same person *not moving* ("looks at the camera").

Reference features (the aligned crop and SFace embedding, via `idvid.faces`) are computed once per
identity in the main process and cached in safetensors shards (`ReferenceStore`); no ONNX model runs
inside the training loop or in the DataLoader workers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from idvid.errors import InputError
from idvid.train.config import TRAIN_SEED_END, VALIDATION_SEED_END, DataConfig

log = logging.getLogger("idvid.train")

SPLIT_RANGES = {"train": (0, TRAIN_SEED_END), "validation": (TRAIN_SEED_END, VALIDATION_SEED_END)}
REFERENCE_ANALYSIS_SIZE = 128  # references are rendered at least this large for face analysis
_IMAGE_STREAM, _FRAME_STREAM, _RESAMPLE_STREAM = 0x1A, 0xF7, 0x5E


def check_split_seeds(seeds: Iterable[int], split: str, where: str = "data") -> None:
    """`InputError` unless every identity seed lies in `split`'s range ("train" or "validation")."""
    lo, hi = SPLIT_RANGES[split]
    bad = sorted({int(s) for s in seeds if not lo <= int(s) < hi})
    if bad:
        if split == "train":
            why = (f"identity seeds >= {TRAIN_SEED_END} belong to the validation/held-out people and are never "
                   "used for training")
        else:
            why = f"validation identities must have seeds in [{TRAIN_SEED_END}, {VALIDATION_SEED_END})"
        raise InputError(f"{where}: refusing identity seed {bad[0]}" + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")
                         + f" for {split}: {why}")


@dataclass(frozen=True)
class ClipItem:
    """One clip of the training/validation pool."""

    identity_seed: int
    clip_index: int
    video_path: str | None = None  # folder source
    mask_path: str | None = None
    reference_path: str | None = None
    row: dict | None = dataclasses.field(default=None, compare=False, hash=False)  # manifest row


def synth_items(seed_start: int, num_identities: int, clips_per_identity: int) -> list[ClipItem]:
    return [ClipItem(seed_start + i, k) for i in range(num_identities) for k in range(clips_per_identity)]


INTENSITY_BIN, INTENSITY_CAP = 2.0, 20.0  # histogram bins for resampling; intensities are capped at 20


def flat_intensity_items(seed_start: int, num_identities: int, clips_per_identity: int, candidates: int,
                         frames: int, seed: int = 0, cache: Path | None = None,
                         progress: bool = True) -> list[ClipItem]:
    """MotionCharacter's motion-intensity resampling for the synthetic world: each identity's
    `clips_per_identity` clips are drawn without replacement from `candidates` times as many clip indices,
    with probability inversely proportional to how common their ground-truth intensity is (bins of 2 up
    to the cap of 20), so fast and large motions are no longer rare. Deterministic; cached as JSON."""
    import json

    from tqdm.auto import tqdm

    from idvid.synth import clip_spec, render_clip

    key = f"flat-intensity-{seed_start}-{num_identities}-{clips_per_identity}-{candidates}-{frames}-{seed}.json"
    if cache is not None and (cache / key).is_file():
        return [ClipItem(s, k) for s, k in json.loads((cache / key).read_text())]
    n = clips_per_identity * candidates
    pool = synth_items(seed_start, num_identities, n)
    intensity = np.array([render_clip(clip_spec(it.identity_seed, it.clip_index), size=64, num_frames=frames,
                                      fps=8.0, pixels=False).motion_intensity
                          for it in tqdm(pool, desc="clip intensities", unit="clip", disable=not progress)])
    bins = np.minimum(intensity, INTENSITY_CAP - 1e-6) // INTENSITY_BIN
    counts = np.bincount(bins.astype(int), minlength=int(INTENSITY_CAP / INTENSITY_BIN))
    weight = 1.0 / counts[bins.astype(int)]
    items = []
    for i in range(num_identities):
        w = weight[i * n : (i + 1) * n]
        rng = np.random.default_rng([seed, _RESAMPLE_STREAM, seed_start + i])
        chosen = np.sort(rng.choice(n, size=clips_per_identity, replace=False, p=w / w.sum()))
        items += [pool[i * n + j] for j in chosen]
    if cache is not None:
        from idvid.io.atomic import publish, temp_beside

        cache.mkdir(parents=True, exist_ok=True)
        tmp = temp_beside(cache / key)
        Path(tmp).write_text(json.dumps([[it.identity_seed, it.clip_index] for it in items]))
        publish(tmp, cache / key)
    return items


def folder_items(path: str | Path, split: str = "train") -> list[ClipItem]:
    """Clips listed by an `idvid synth` folder's manifest; `InputError` if any is outside `split`."""
    from idvid.synth.manifest import read_manifest

    rows = read_manifest(path)
    if not rows:
        raise InputError(f"{path}: the manifest lists no clips")
    check_split_seeds((r["identity_seed"] for r in rows), split, where=f"data.path {path}")
    root = Path(path)
    items = []
    for r in rows:
        mask = root / "masks" / f"{r['clip_id']}.npz"
        items.append(ClipItem(int(r["identity_seed"]), int(r["clip_index"]), r["video_path"],
                              str(mask) if mask.is_file() else None, r["reference_path"], r))
    return items


# ---------------------------------------------------------------------------------------------- references
def analyse_reference(image: np.ndarray, analyzer=None) -> tuple[np.ndarray, np.ndarray, bool]:
    """(aligned 112x112 crop uint8, SFace embedding (128,) float32, found) of the largest face in `image`.

    With no face found the crop is the centre square resized to 112 and the embedding is all zeros."""
    from idvid.faces import get_default_analyzer

    fa = analyzer or get_default_analyzer()
    faces = fa.detect(image)
    if not faces:
        h, w = image.shape[:2]
        s = min(h, w)
        crop = cv2.resize(image[(h - s) // 2 : (h + s) // 2, (w - s) // 2 : (w + s) // 2], (112, 112),
                          interpolation=cv2.INTER_AREA)
        return crop, np.zeros(128, np.float32), False
    face = max(faces, key=lambda f: f.area)
    return fa.align(image, face), fa.embed(image, face, model="sface").astype(np.float32), True


class ReferenceStore:
    """Per-identity reference features in safetensors shards under `folder`:

        refs-<first seed>-<last seed>.safetensors   keys "<seed>.image" (S, S, 3) uint8, "<seed>.crop"
                                                     (112, 112, 3) uint8, "<seed>.embedding" (128,) float32

    `ensure(seeds, load)` computes the missing identities (in the calling process: face models load
    there only) and writes them as new shards, atomically. Workers read shards lazily.
    """

    SHARD = 256

    def __init__(self, folder: str | Path, size: int):
        self.folder, self.size = Path(folder), size
        self._index: dict[int, Path] | None = None
        self._shards: dict[Path, dict[str, torch.Tensor]] = {}

    def __getstate__(self) -> dict:  # workers get the index, not loaded shards
        return {**self.__dict__, "_shards": {}}

    def index(self) -> dict[int, Path]:
        if self._index is None:
            from safetensors import safe_open

            self._index = {}
            for shard in sorted(self.folder.glob("refs-*.safetensors")):
                with safe_open(str(shard), "pt") as f:
                    for key in f.keys():
                        self._index[int(key.split(".")[0])] = shard
        return self._index

    def ensure(self, seeds: Sequence[int], load: Callable[[int], np.ndarray], progress: bool = True) -> int:
        """Compute and store references for the seeds not cached yet; returns how many were computed.
        `load(seed)` returns the reference portrait (RGB uint8), at least REFERENCE_ANALYSIS_SIZE wide."""
        from safetensors.torch import save_file
        from tqdm.auto import tqdm

        missing = sorted({int(s) for s in seeds} - set(self.index()))
        if not missing:
            return 0
        self.folder.mkdir(parents=True, exist_ok=True)
        misses = 0
        bar = tqdm(total=len(missing), desc="reference faces", unit="id", disable=not progress or len(missing) < 8)
        for start in range(0, len(missing), self.SHARD):
            chunk = missing[start : start + self.SHARD]
            tensors = {}
            for seed in chunk:
                image = load(seed)
                crop, emb, found = analyse_reference(image)
                misses += not found
                small = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_AREA) \
                    if image.shape[0] != self.size else image
                tensors[f"{seed}.image"] = torch.from_numpy(np.ascontiguousarray(small))
                tensors[f"{seed}.crop"] = torch.from_numpy(np.ascontiguousarray(crop))
                tensors[f"{seed}.embedding"] = torch.from_numpy(emb)
                bar.update()
            path = self.folder / f"refs-{chunk[0]}-{chunk[-1]}.safetensors"
            tmp = path.with_name(f".{path.name}.tmp")
            save_file(tensors, str(tmp))
            tmp.replace(path)
        bar.close()
        if misses:
            log.warning("no face found in %d of %d reference portraits; they get a zero embedding", misses, len(missing))
        self._index = None
        return len(missing)

    def get(self, seed: int) -> dict[str, torch.Tensor]:
        shard = self.index().get(int(seed))
        if shard is None:
            raise KeyError(f"identity {seed} is not in the reference cache {self.folder}; call ensure() first")
        if shard not in self._shards:
            from safetensors.torch import load_file

            self._shards[shard] = load_file(str(shard))
        t = self._shards[shard]
        return {k: t[f"{seed}.{k}"] for k in ("image", "crop", "embedding")}


def synth_reference(seed: int, size: int) -> np.ndarray:
    from idvid.synth import identity, render_reference

    return render_reference(identity(seed), max(size, REFERENCE_ANALYSIS_SIZE))[0]


# ---------------------------------------------------------------------------------------------- helpers
def _unit(*key: int) -> float:
    """A uniform number in [0, 1) that is a pure function of `key`."""
    return float(np.random.default_rng(list(key)).random())


def _resize_frames(frames: np.ndarray, size: int, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    if frames.shape[1] == size and frames.shape[2] == size:
        return frames
    return np.stack([cv2.resize(f, (size, size), interpolation=interpolation) for f in frames])


def box_masks(boxes: np.ndarray, size: int, source_size: int) -> np.ndarray:
    """Ellipses inscribed in face boxes (T, 4) (source pixels) -> (T, size, size) bool masks."""
    s = size / source_size
    out = np.zeros((len(boxes), size, size), np.uint8)
    for m, (x0, y0, x1, y1) in zip(out, boxes * s, strict=True):
        centre = (int(round((x0 + x1) / 2)), int(round((y0 + y1) / 2)))
        axes = (max(int(round((x1 - x0) / 2)), 1), max(int(round((y1 - y0) / 2)), 1))
        cv2.ellipse(m, centre, axes, 0, 0, 360, 1, -1)
    return out.astype(bool)


def foreground_flow_maps(frames: np.ndarray) -> np.ndarray:
    """(T, H, W) float16 foreground flow magnitude (MotionCharacter Eq. 6 maps, `idvid.data.curate.motion`)
    in pixels of a 512-pixel frame; map t is the flow from frame t to t+1 (the last repeats the one before,
    a single frame gives zeros)."""
    from idvid.data.curate.motion import flow_field, foreground_flow

    t, h, w = frames.shape[:3]
    if t < 2:
        return np.zeros((t, h, w), np.float16)
    grays = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    unit = 512.0 / min(h, w)
    maps = []
    for a, b in zip(grays[:-1], grays[1:], strict=True):
        mag = np.linalg.norm(flow_field(a, b, "dis"), axis=-1) * unit
        maps.append(foreground_flow(mag)[0])
    maps.append(maps[-1])
    return np.stack(maps).astype(np.float16)


# ---------------------------------------------------------------------------------------------- dataset
class IdentityVideoDataset(Dataset):
    """The training (or validation) set; see the module docstring. Build with `build_dataset`."""

    def __init__(self, items: list[ClipItem], data: DataConfig, references: ReferenceStore | None, split: str = "train",
                 seed: int = 0):
        check_split_seeds((it.identity_seed for it in items), split)
        if not items:
            raise InputError(f"the {split} set is empty")
        self.items, self.data, self.references, self.split, self.seed = items, data, references, split, seed
        self.image_ratio = data.image_ratio if split == "train" else 0.0
        self.flow_maps = data.flow_maps
        self.new_clips_each_epoch = data.new_clips_each_epoch and split == "train"
        self.fps = 8.0  # synth clips are rendered at the world's default rate
        self.latents: LatentStore | None = None  # set by the task when data.cache_latents

    def __len__(self) -> int:
        return self.data.epoch_size or len(self.items)

    # -- per-item choices, pure functions of (seed, epoch, index)
    def item_at(self, epoch: int, index: int) -> ClipItem:
        it = self.items[index % len(self.items)]
        if self.new_clips_each_epoch and it.video_path is None:
            # pass p over the pool (p = epoch * passes-per-epoch + index // pool) shows new clip indices
            passes = -(-len(self) // len(self.items))
            p = epoch * passes + index // len(self.items)
            it = dataclasses.replace(it, clip_index=it.clip_index + self.data.clips_per_identity * p)
        return it

    def is_image(self, epoch: int, index: int) -> bool:
        return self.image_ratio > 0 and _unit(self.seed, _IMAGE_STREAM, epoch, index) < self.image_ratio

    def image_frame(self, it: ClipItem) -> int:
        """Which frame an image item of clip `it` shows (fixed per clip, so cached image latents stay valid)."""
        return int(_unit(self.seed, _FRAME_STREAM, it.identity_seed, it.clip_index) * self.data.frames)

    # -- loading
    def clip_data(self, it: ClipItem, pixels: bool = True) -> dict[str, Any]:
        """Frames (T, S, S, 3), masks (T, S, S), boxes (T, 4) at the training size, plus prompt, action
        phrase, motion intensity and the clip spec. `pixels=False`: ground truth only (no rendering/decoding)."""
        from idvid.synth import clip_spec, render_clip

        size, t = self.data.size, self.data.frames
        spec = clip_spec(it.identity_seed, it.clip_index)
        if it.video_path is None:
            clip = render_clip(spec, size=max(size, 64), num_frames=t, fps=self.fps, pixels=pixels)
            c = dict(frames=clip.frames, masks=clip.masks, boxes=clip.face_boxes.astype(np.float32), src=clip.size,
                     intensity=clip.motion_intensity, prompt=clip.prompt, action_phrase=clip.action_phrase)
        else:
            row = it.row or {}
            c = dict(frames=None, masks=None, boxes=np.asarray(row["face_box"], np.float32)[:t], src=int(row["width"]),
                     intensity=float(row["motion_intensity"]), prompt=row["prompt"], action_phrase=row["action_phrase"])
            if pixels:
                from idvid.io.video import read_video

                c["frames"], _ = read_video(it.video_path, max_frames=t, min_frames=t)
                if it.mask_path is not None:
                    with np.load(it.mask_path) as z:
                        width = int(z["shape"][-1])
                        c["masks"] = np.unpackbits(z["masks"], axis=-1, count=width).astype(bool)[:t]
                else:
                    c["masks"] = box_masks(c["boxes"], c["frames"].shape[1], c["src"])
        if pixels:
            c["frames"] = _resize_frames(c["frames"], size)
            c["masks"] = _resize_frames(c["masks"].astype(np.uint8), size, cv2.INTER_NEAREST).astype(bool)
        c["boxes"] = c["boxes"] * (size / c["src"])
        c["spec"] = spec
        return c

    def as_image(self, it: ClipItem, c: dict[str, Any]) -> dict[str, Any]:
        """The clip as a static image item: frame j repeated, intensity 0, the still prompt and phrase."""
        from idvid.synth.prompts import action_phrase, prompt

        j, t = self.image_frame(it), self.data.frames
        c = dict(c)
        for key in ("frames", "masks", "boxes"):
            if c.get(key) is not None:
                c[key] = np.repeat(c[key][j : j + 1], t, axis=0)
        spec = c["spec"]
        still = dataclasses.replace(spec.motion, action="static", secondary="")
        c.update(prompt=prompt(spec.identity, spec.appearance, still), action_phrase=action_phrase(spec.identity, still),
                 intensity=0.0)
        return c

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, Any]:
        epoch, index = key if isinstance(key, tuple) else (0, int(key))
        it = self.item_at(epoch, index)
        image = self.is_image(epoch, index)
        cached = self.latents is not None
        c = self.clip_data(it, pixels=not cached)
        if image:
            c = self.as_image(it, c)
        out = {
            "face_boxes": torch.from_numpy(np.ascontiguousarray(c["boxes"], dtype=np.float32)),
            "prompt": c["prompt"],
            "action_phrase": c["action_phrase"],
            "motion_intensity": torch.tensor(c["intensity"], dtype=torch.float32),
            "is_image": torch.tensor(image),
            "identity_seed": torch.tensor(it.identity_seed, dtype=torch.int64),
            "clip_index": torch.tensor(it.clip_index, dtype=torch.int64),
        }
        if self.references is not None:
            ref = self.references.get(it.identity_seed)
            out.update(reference=ref["image"], face_crop=ref["crop"], face_embedding=ref["embedding"])
        if cached:
            out.update(self.latents.get(it, image))
            return out
        out["frames"] = torch.from_numpy(np.ascontiguousarray(c["frames"]))
        out["face_mask"] = torch.from_numpy(np.ascontiguousarray(c["masks"]))
        if self.flow_maps:
            t, s = self.data.frames, self.data.size
            flow = np.zeros((t, s, s), np.float16) if image else foreground_flow_maps(c["frames"])
            out["flow_fg"] = torch.from_numpy(flow)
        return out


class LatentStore:
    """Cached VAE latents of a dataset's clips (video and still-image variants), their latent-size face
    masks (and region weights with data.flow_maps) and the identities' reference latents, in safetensors
    shards under a folder named by a fingerprint of the VAE weights and the data settings.

    Keys: "<seed>-<clip>.<video|image>.latents" (F', C, h, w), ".mask" (F', 1, h, w) float16,
    ".region" (F', 1, h, w) float16, and "<seed>.reference_latent" (C, h, w).
    """

    SHARD = 64
    ENCODE_BATCH = 4

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._index: dict[str, Path] | None = None
        self._shards: dict[Path, dict[str, torch.Tensor]] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_shards": {}}

    def index(self) -> dict[str, Path]:
        if self._index is None:
            from safetensors import safe_open

            self._index = {}
            for shard in sorted(self.folder.glob("latents-*.safetensors")):
                with safe_open(str(shard), "pt") as f:
                    for key in f.keys():
                        self._index[key] = shard
        return self._index

    def _tensor(self, key: str) -> torch.Tensor:
        shard = self.index().get(key)
        if shard is None:
            raise KeyError(f"{key} is not in the latent cache {self.folder}")
        if shard not in self._shards:
            from safetensors.torch import load_file

            self._shards[shard] = load_file(str(shard))
        return self._shards[shard][key]

    def get(self, it: ClipItem, image: bool) -> dict[str, torch.Tensor]:
        base = f"{it.identity_seed}-{it.clip_index}.{'image' if image else 'video'}"
        out = {"latents": self._tensor(f"{base}.latents"), "latent_mask": self._tensor(f"{base}.mask"),
               "reference_latent": self._tensor(f"{it.identity_seed}.reference_latent")}
        if f"{base}.region" in self.index():
            out["latent_region"] = self._tensor(f"{base}.region")
        return out

    def ensure(self, dataset: IdentityVideoDataset, encode: Callable[[torch.Tensor], torch.Tensor],
               num_workers: int = 0, progress: bool = True) -> int:
        """Encode every clip of `dataset` not cached yet. `encode(frames (B, T, 3, H, W) in [-1, 1])` returns
        scaled latents (B, F', C, h, w). Returns the number of clips encoded."""
        from safetensors.torch import save_file
        from torch.utils.data import DataLoader
        from tqdm.auto import tqdm

        from idvid.objectives import latent_mask, latent_region_weights

        index = self.index()
        todo = [it for it in dict.fromkeys(dataset.items)
                if f"{it.identity_seed}-{it.clip_index}.video.latents" not in index]
        if not todo:
            return 0
        self.folder.mkdir(parents=True, exist_ok=True)
        raw = _RawClips(dataset, todo)
        loader = DataLoader(raw, batch_size=None, num_workers=num_workers)
        bar = tqdm(total=len(todo), desc="caching latents", unit="clip", disable=not progress)
        tensors: dict[str, torch.Tensor] = {}
        done_refs = {k.split(".")[0] for k in index if k.endswith(".reference_latent")}

        def flush(last: bool = False) -> None:
            if tensors and (last or len(tensors) >= 8 * self.SHARD):
                first = min(k for k in tensors if "-" in k.split(".")[0]).split(".")[0]
                path = self.folder / f"latents-{first}-{len(list(self.folder.glob('latents-*')))}.safetensors"
                tmp = path.with_name(f".{path.name}.tmp")
                save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
                tmp.replace(path)
                tensors.clear()

        def encode_group(group: list[tuple[ClipItem, dict[str, torch.Tensor]]]) -> None:
            # several clips per VAE call: at batch 1 PyTorch runs the small 3D convolutions on its slow
            # reference path (4x slower per clip on this CPU), at batch >= 2 on oneDNN
            for kind in ("video", "image"):
                frames = torch.stack([s[f"{kind}_frames"] for _, s in group]).permute(0, 1, 4, 2, 3).float() / 127.5 - 1
                z = encode(frames).float().cpu()  # (B, F', C, h, w)
                grid = (z.shape[1], z.shape[3], z.shape[4])
                masks = latent_mask(torch.stack([s[f"{kind}_masks"] for _, s in group]), grid).half()
                for j, (it, sample) in enumerate(group):
                    base = f"{it.identity_seed}-{it.clip_index}"
                    tensors[f"{base}.{kind}.latents"] = z[j].clone()
                    tensors[f"{base}.{kind}.mask"] = masks[j].clone()
                    if dataset.flow_maps:
                        flow = sample[f"{kind}_flow"][None].float()
                        tensors[f"{base}.{kind}.region"] = latent_region_weights(flow, grid)[0].half()
            new_refs = [(it, s) for it, s in group if str(it.identity_seed) not in done_refs]
            new_refs = list({str(it.identity_seed): (it, s) for it, s in new_refs}.values())
            if new_refs:
                refs = torch.stack([s["reference"] for _, s in new_refs])[:, None].permute(0, 1, 4, 2, 3).float() / 127.5 - 1
                z = encode(refs)[:, 0].float().cpu()
                for j, (it, _) in enumerate(new_refs):
                    tensors[f"{it.identity_seed}.reference_latent"] = z[j].clone()
                    done_refs.add(str(it.identity_seed))
            bar.update(len(group))

        group: list[tuple[ClipItem, dict[str, torch.Tensor]]] = []
        with torch.no_grad():
            for it_index, sample in loader:
                group.append((todo[int(it_index)], sample))
                if len(group) == self.ENCODE_BATCH:
                    encode_group(group)
                    group = []
                    flush()
            if group:
                encode_group(group)
        flush(last=True)
        bar.close()
        self._index = None
        return len(todo)


class _RawClips(Dataset):
    """Pixel data of the clips to cache: video and still-image variants (+ flow maps) and the reference."""

    def __init__(self, dataset: IdentityVideoDataset, items: list[ClipItem]):
        self.dataset, self.items = dataset, items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, dict[str, torch.Tensor]]:
        ds, it = self.dataset, self.items[i]
        c = ds.clip_data(it)
        still = ds.as_image(it, c)
        out = {"video_frames": c["frames"], "video_masks": c["masks"], "image_frames": still["frames"],
               "image_masks": still["masks"], "reference": ds.references.get(it.identity_seed)["image"].numpy()}
        if ds.flow_maps:
            out["video_flow"] = foreground_flow_maps(c["frames"])
            out["image_flow"] = np.zeros_like(out["video_flow"])
        return i, {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in out.items()}


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors, keep strings as lists."""
    out: dict[str, Any] = {}
    for key in items[0]:
        values = [it[key] for it in items]
        out[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else list(values)
    return out


def cache_root(data: DataConfig, run_dir: str | Path) -> Path:
    return Path(data.cache_dir) if data.cache_dir else Path(run_dir) / "cache"


def _reference_folder(data: DataConfig, run_dir: str | Path) -> Path:
    if data.source == "folder":
        tag = hashlib.sha1(str(Path(data.path).resolve()).encode()).hexdigest()[:10]
        return cache_root(data, run_dir) / f"references-folder-{tag}-s{data.size}"
    return cache_root(data, run_dir) / f"references-synth-s{data.size}"


def build_dataset(data: DataConfig, run_dir: str | Path, split: str = "train", seed: int = 0,
                  num_validation: int = 4, progress: bool = True, references: bool = True) -> IdentityVideoDataset:
    """The training set described by `data` (split "train"), or the validation set: identities
    [validation_seed, validation_seed + num_validation), clip 0 each, always rendered, no image items.
    `references=False`: items carry no reference portrait / face crop / embedding (e.g. VAE training)."""
    if split == "validation":
        items = synth_items(data.validation_seed, num_validation, 1)
        store = None
        if references:
            store = ReferenceStore(cache_root(data, run_dir) / f"references-synth-s{data.size}", data.size)
            store.ensure([it.identity_seed for it in items], lambda s: synth_reference(s, data.size), progress)
        vdata = dataclasses.replace(data, epoch_size=None)
        return IdentityVideoDataset(items, vdata, store, "validation", seed)
    if split != "train":
        raise ValueError(f"unknown split {split!r}")
    if data.source == "synth" and data.intensity_candidates > 1:
        items = flat_intensity_items(data.seed_start, data.num_identities, data.clips_per_identity,
                                     data.intensity_candidates, data.frames, seed, cache_root(data, run_dir), progress)
    elif data.source == "synth":
        items = synth_items(data.seed_start, data.num_identities, data.clips_per_identity)
    elif data.source == "folder":
        items = folder_items(data.path, "train")
    else:
        raise InputError(f"config data.source: {data.source!r} has no identity video data (use synth or folder)")
    check_split_seeds((it.identity_seed for it in items), "train")
    if not references:
        return IdentityVideoDataset(items, data, None, "train", seed)
    store = ReferenceStore(_reference_folder(data, run_dir), data.size)
    refs = {it.identity_seed: it.reference_path for it in items}

    def load(seed: int) -> np.ndarray:
        if refs.get(seed) is not None:
            from idvid.io.images import load_image

            image = load_image(refs[seed])
            if image.shape[0] < REFERENCE_ANALYSIS_SIZE:
                image = cv2.resize(image, (REFERENCE_ANALYSIS_SIZE,) * 2, interpolation=cv2.INTER_CUBIC)
            return image
        return synth_reference(seed, data.size)

    store.ensure(sorted(refs), load, progress)
    return IdentityVideoDataset(items, data, store, "train", seed)
