"""Export a run's frozen encoder for deployment: ONNX (checked with onnxruntime) or TorchScript.

The exported model is the encoder alone; the preprocessing that `Run.embed` applies first (the
modality's `prepare`) is not part of it, see `export_encoder` for what it expects.
"""
from __future__ import annotations

import copy
import io
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from .artifacts import atomic_write_bytes, write_json
from .errors import ConfigError, ExportError
from .run import Run, encode_storage, load

FORMATS = {"onnx": "encoder.onnx", "torchscript": "encoder.pt"}  # format -> default file name in the run directory
INPUT, OUTPUT = "input", "embedding"
CHECK_ROWS = 8  # synthetic storage rows the encoder is traced on
CHECK_BATCHES = (8, 3, 1)  # batch sizes the exported model is compared with PyTorch on (not only the traced one)
TOLERANCE = 1e-4  # largest accepted |exported - PyTorch|, relative to max(1, the largest |embedding|)

Apply = Callable[[torch.Tensor], np.ndarray]


def sidecar_path(path: str | Path) -> Path:
    """Where the JSON description of an exported file lives: PATH.json beside it."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def export_encoder(run_or_path: Run | str | Path, format: str, out: str | Path | None = None,
                   opset: int | None = None, overwrite: bool = False) -> Path:
    """Write the run's frozen encoder (eval mode) as ONNX or TorchScript; returns the file's path.

    The file is written atomically (temporary file beside it, then a rename), by default to RUN/encoder.onnx or
    RUN/encoder.pt; an existing file is kept unless `overwrite`. Beside it, PATH.json states the input's shape,
    dtype and preparation, the output dimension and the largest absolute difference from the PyTorch encoder
    (`Run.embed`'s numbers) measured at export on synthetic inputs at batch sizes 8, 3 and 1; an export that
    differs by more than 1e-4 (relative to the largest embedding value, if above 1) raises `ExportError`.

    Input and output. The model takes one float32 tensor named "input" (ONNX) or the one argument of `forward`
    (TorchScript): the batch `Run.embed` feeds the encoder, i.e. the modality's `prepare` applied to storage;
    it returns float32 [batch, out_dim] embeddings ("embedding"). The batch dimension is dynamic, the others
    are fixed to the training data's:

    - images: [batch, C, H, W] in NCHW at the training height and width: uint8 pixels / 255 (`Run.embed` rounds
      float pixels to uint8 first), resized bilinearly to H x W if another size, minus the training mean and
      divided by the training std per channel (the numbers are in PATH.json);
    - series: [batch, C, L] with L the training length: each channel z-scored with the training mean and std;
      NaN marks missing values and padding. The length is fixed: pad a shorter series at the end with NaN
      (which leaves its embedding unchanged); a longer one must be cut. There is no separate `mask` input.
    - tables: [batch, D] with D = `input_dim` of the spec: the prepared layout of preprocess.py (scaled
      numeric values with the training median for missing cells, 0/1 missing indicators, one one-hot block of
      2 + K slots per categorical column), built with the run's fitted statistics (`resolved.data_spec` in
      config.yaml): `selfsup.load(RUN).modality.prepare(storage, run.spec)` makes it.

    `opset` (ONNX only) picks the ONNX opset (default: torch's). ONNX needs the optional packages onnx and
    onnxruntime (`pip install 'selfsup[export]'`). TorchScript is written with `torch.jit.trace`; load it with
    `torch.jit.load`.
    """
    if format not in FORMATS:
        raise ConfigError(f"--format {format!r}: choose {' or '.join(FORMATS)}")
    if opset is not None and format != "onnx":
        raise ConfigError(f"--opset {opset}: an ONNX opset; --format {format} has none")
    run = run_or_path if isinstance(run_or_path, Run) else load(run_or_path)
    path = output_path(run, format, out, overwrite)
    exporter = onnx_exporter(opset) if format == "onnx" else torchscript
    encoder = copy.deepcopy(run.encoder).float().cpu().eval()
    storage = run.modality.export_inputs.example(run.spec, CHECK_ROWS, torch.Generator().manual_seed(0))
    if storage is None:
        raise ConfigError(f"the {run.resolved.modality} modality makes no example inputs, which exporting an "
                          "encoder needs")
    x = run.modality.prepare(storage, run.spec).float().contiguous()
    name = f"{run.resolved.encoder} ({type(encoder).__name__})"
    try:
        with portable_graph(), torch.no_grad():
            data, apply, info = exporter(encoder, x)
    except Exception as exc:
        raise ExportError(f"encoder {name} cannot be exported to {format}: {type(exc).__name__}: "
                          f"{first_line(exc)}") from None
    diff, dim = check(encoder, run, storage, x, apply, name, format)
    description = {
        "format": format, "file": path.name, "run": str(run.path) if run.path else None,
        "modality": run.resolved.modality, "encoder": run.resolved.encoder,
        "input": {"name": INPUT, "shape": ["batch", *x.shape[1:]], "dtype": "float32",
                  "preparation": run.modality.export_inputs.described(run.spec)
                  or f"the float32 batch that the {run.resolved.modality} modality's `prepare` makes from storage"},
        "output": {"name": OUTPUT, "shape": ["batch", dim], "dtype": "float32"},
        "check": {"batch_sizes": list(CHECK_BATCHES), "max_abs_diff": diff, "tolerance": TOLERANCE,
                  "inputs": "synthetic (the modality's export_inputs.example, seed 0), compared with Run.embed"},
        **info, "torch": torch.__version__,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    write_json(sidecar_path(path), description)
    return path


def output_path(run: Run, format: str, out: str | Path | None, overwrite: bool) -> Path:
    """The file to write: `out`, or the format's default name in the run directory; refuses to replace a file."""
    if out is None:
        if run.path is None:
            raise ConfigError("--out is needed: this run has no directory to export into")
        out = run.path / FORMATS[format]
    path = Path(out)
    if path.is_dir():
        raise ConfigError(f"--out {path}: a directory; give a file name (e.g. {path / FORMATS[format]})")
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} exists; pass --overwrite to replace it (or --out another file)")
    return path


@contextmanager
def portable_graph() -> Iterator[None]:
    """Trace the plain attention path (not the fused CPU/CUDA kernel ONNX has no operator for), quietly: trace
    warnings about Python values read from tensors are answered by the check on several batch sizes."""
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with warnings.catch_warnings():
            for category in (torch.jit.TracerWarning, DeprecationWarning, FutureWarning):
                warnings.simplefilter("ignore", category)
            warnings.filterwarnings("ignore", "Constant folding", UserWarning)  # an exporter note, not a fault
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def onnx_exporter(opset: int | None) -> Callable[[nn.Module, torch.Tensor], tuple[bytes, Apply, dict[str, Any]]]:
    """An exporter to ONNX with a dynamic batch dimension, run back through onnxruntime for the check."""
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise ConfigError(f"--format onnx needs onnx and onnxruntime ({exc.name} is missing): "
                          "pip install 'selfsup[export]'") from None

    def export(encoder: nn.Module, x: torch.Tensor) -> tuple[bytes, Apply, dict[str, Any]]:
        buf = io.BytesIO()
        torch.onnx.export(encoder, (x,), buf, dynamo=False, input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, opset_version=opset)
        data = buf.getvalue()
        model = onnx.load_model_from_string(data)
        onnx.checker.check_model(model)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        used = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        return data, lambda t: session.run(None, {INPUT: t.numpy()})[0], {
            "opset": used, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}

    return export


def torchscript(encoder: nn.Module, x: torch.Tensor) -> tuple[bytes, Apply, dict[str, Any]]:
    """The encoder traced with `torch.jit.trace`; the traced module (what is saved) serves the check."""
    traced = torch.jit.trace(encoder, (x,))
    buf = io.BytesIO()
    torch.jit.save(traced, buf)

    def apply(t: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return traced(t).numpy()

    return buf.getvalue(), apply, {}


def check(encoder: nn.Module, run: Run, storage: torch.Tensor, x: torch.Tensor, apply: Apply, name: str,
          format: str) -> tuple[float, int]:
    """(largest |exported - PyTorch| over CHECK_BATCHES, output dim); ExportError beyond the tolerance."""
    worst, scale, dim = 0.0, 1.0, 0
    for n in CHECK_BATCHES:
        ref = encode_storage(encoder, run.modality, run.spec, storage[:n])
        try:
            got = np.asarray(apply(x[:n]))
        except Exception as exc:
            raise ExportError(f"the {format} export of encoder {name} fails on a batch of {n}: "
                              f"{type(exc).__name__}: {first_line(exc)}") from None
        if got.shape != ref.shape:
            raise ExportError(f"the {format} export of encoder {name} returns shape {got.shape} for a batch of {n}, "
                              f"PyTorch {ref.shape}")
        worst = max(worst, float(np.abs(got - ref).max()))
        scale, dim = max(scale, float(np.abs(ref).max())), ref.shape[1]
    if not worst <= TOLERANCE * scale:  # also catches NaN
        raise ExportError(f"the {format} export of encoder {name} differs from PyTorch by up to {worst:.3g} "
                          f"(tolerance {TOLERANCE * scale:.3g}) on batches of {', '.join(map(str, CHECK_BATCHES))}")
    return worst, dim


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""
