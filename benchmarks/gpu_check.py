"""CUDA check: every (method, modality) pair trains and embeds on the GPU in bf16, and the image preset's throughput.

Three parts, each bounded in time, results written as they come (a part cut short says so):
- `throughput`: SimCLR on ConvNet-4 at 28 px (the CPU reference configuration of throughput.py) and on ResNet-18
  at 32 px: the bare training step on a pre-made batch (bf16 autocast and fp32, channels_last) and selfsup's whole
  training loop on Fashion-MNIST (data, views made on the GPU, forward, backward, step), images/s.
- `smoke`: every pair of compatibility.supported_pairs() trains one epoch on the modality's toy data (48 items,
  random labels) with `device="cuda"`, precision auto, heads of width 32; the loss must be finite and the
  embeddings (Run.embed on the GPU) finite and of the declared width.
- `commands`: the README main job (digits, 30 epochs, --cluster 10) and a one-process torchrun job, as commands.
- `fmnist`: the Fashion-MNIST preset for a few minutes on the GPU, then kNN and linear probe on the test split
  beside raw pixels and the random encoder, measured in the same run.

    python benchmarks/gpu_check.py --json            # all parts; needs a CUDA device
    python benchmarks/gpu_check.py --parts smoke --only-pairs simclr-image,mae-image --device cpu   # a CPU dry run
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, publish  # noqa: E402
from throughput import training_step  # noqa: E402

import selfsup  # noqa: E402
from selfsup.compatibility import supported_pairs  # noqa: E402
from selfsup.data import Dataset, Split  # noqa: E402
from selfsup.methods import methods  # noqa: E402
from selfsup.modalities import get_modality, new_encoder  # noqa: E402
from selfsup.views import Views  # noqa: E402

METHOD_OPTIONS = {"proj_hidden_dim": 512, "proj_dim": 128, "temperature": 0.5}


def device_info(device: torch.device) -> dict:
    """What the accelerator is, from detection."""
    if device.type != "cuda":
        return {"type": device.type}
    props = torch.cuda.get_device_properties(device)
    return {"type": "cuda", "name": props.name, "capability": f"{props.major}.{props.minor}",
            "multiprocessors": props.multi_processor_count, "memory_gib": round(props.total_memory / 2 ** 30, 1),
            "bf16_supported": torch.cuda.is_bf16_supported(), "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version()}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_step(encoder: str, size: int, batch: int, precision: str, device: torch.device, seconds: float) -> float:
    """Images/s of SimCLR's training step (two views, forward, backward, SGD) on one pre-made batch, channels_last."""
    torch.manual_seed(0)
    spec = {"channels": 1, "height": size, "width": size, "size": size, "mean": [0.5], "std": [0.25]}
    method = methods.get("simclr")(new_encoder(get_modality("image"), encoder, spec), **METHOD_OPTIONS)
    method = method.to(device).to(memory_format=torch.channels_last)
    x = torch.randn(batch, 1, size, size, device=device).contiguous(memory_format=torch.channels_last)
    views = Views([x, x.flip(-1)])
    step = training_step(method, views, device, precision)
    for _ in range(5):
        step()
    sync(device)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n < 5:
        step()
        n += 1
        if n % 10 == 0:
            sync(device)
    sync(device)
    return batch * n / (time.perf_counter() - start)


def whole_loop(device: torch.device, encoder: str, batch: int, seconds: float, **options) -> dict:
    """selfsup's training loop on Fashion-MNIST for `seconds` (no monitoring, no evaluation)."""
    start = time.perf_counter()
    run = selfsup.train("fashion-mnist", method="simclr", encoder=encoder, minutes=seconds / 60, batch_size=batch,
                        optimizer="sgd", lr=0.03, method_options=METHOD_OPTIONS, monitor=False, device=str(device),
                        **options)
    return {"encoder": encoder, "batch_size": batch, "img_per_s": round(run.summary["samples_per_s"], 1),
            "steps": run.summary["steps"], "precision": run.resolved.precision,
            "wall_s": round(time.perf_counter() - start, 1), **options}


def throughput(device: torch.device, seconds: float) -> dict:
    rows = []
    for encoder, size in (("convnet4", 28), ("resnet18", 32)):
        for batch in (256, 1024):
            for precision in ("bf16", "fp32"):
                rows.append({"encoder": encoder, "size": size, "batch_size": batch, "precision": precision,
                             "img_per_s": round(bare_step(encoder, size, batch, precision, device, seconds), 1)})
                print("bare step", rows[-1], flush=True)
    loops = []
    for batch in (256, 1024):
        loops.append(whole_loop(device, "convnet4", batch, 2 * seconds))
        print("whole loop", loops[-1], flush=True)
    return {"bare_step": rows, "whole_loop": loops,
            "note": "bare step: SimCLR (projection 512-512-128, T=0.5), SGD momentum 0.9, random inputs of the "
                    "stated size, channels_last; whole loop: Fashion-MNIST 28 px, views made on the device"}


def toy(modality_name: str, seed: int = 0) -> Dataset:
    """The modality's toy data (48 items) with random labels, so that evaluation paths have something to read."""
    modality = get_modality(modality_name)
    rng = np.random.default_rng(seed)
    x = modality.from_array(modality.toy_data(48, rng), f"toy {modality_name}")
    return Dataset(f"toy-{modality_name}", modality_name, Split(x, rng.integers(0, 3, 48)))


def small_options(name: str) -> dict:
    hp = methods.get(name).hyperparameters()
    small = {k: 32 for k, v in hp.items() if k.endswith("_dim") and isinstance(v, int) and not isinstance(v, bool)}
    return {**small, **({"num_prototypes": 8} if "num_prototypes" in hp else {})}


def smoke_pair(method: str, modality: str, device: torch.device) -> dict:
    start = time.perf_counter()
    ds = toy(modality)
    run = selfsup.train(ds, method=method, epochs=1, batch_size=16, device=str(device),
                        method_options=small_options(method), monitor=False)
    z = run.embed(ds.train.x, device=str(device))
    loss = run.summary.get("final_loss")
    problems = [p for p, bad in (("loss not finite", loss is None or not math.isfinite(loss)),
                                 ("embeddings not finite", not np.isfinite(z).all()),
                                 ("embedding width", z.shape != (48, run.encoder.out_dim))) if bad]
    return {"pair": f"{method}-{modality}", "ok": not problems, "problems": problems,
            "precision": run.summary["precision"], "device": run.summary["device"],
            "seconds": round(time.perf_counter() - start, 2)}


def smoke(device: torch.device, budget: float, only: set[str] | None) -> dict:
    pairs = [p for p in supported_pairs() if only is None or f"{p[0]}-{p[1]}" in only]
    rows, start = [], time.perf_counter()
    for method, modality in pairs:
        if time.perf_counter() - start > budget:
            break
        try:
            rows.append(smoke_pair(method, modality, device))
        except Exception as exc:  # noqa: BLE001 - every failure is a finding to record
            rows.append({"pair": f"{method}-{modality}", "ok": False,
                         "problems": [f"{type(exc).__name__}: {exc}".splitlines()[0][:300]],
                         "where": traceback.format_exc().splitlines()[-6:]})
        if not rows[-1]["ok"]:
            print("FAILED", rows[-1], flush=True)
    return {"pairs": len(pairs), "run": len(rows), "passed": sum(r["ok"] for r in rows),
            "failed": [r for r in rows if not r["ok"]], "not_reached": [f"{m}-{d}" for m, d in pairs[len(rows):]],
            "seconds_per_pair": {r["pair"]: r.get("seconds") for r in rows}}


def fmnist(device: torch.device, minutes: float) -> dict:
    """The Fashion-MNIST preset (no method given) for `minutes`, evaluated with kNN and linear probe."""
    from selfsup.evaluate import evaluate_run  # noqa: PLC0415

    start = time.perf_counter()
    run = selfsup.train("fashion-mnist", minutes=minutes, device=str(device))
    trained = time.perf_counter() - start
    ev = evaluate_run(run, protocols=("knn", "linear"), finetune=False)
    return {"method": run.config.method, "encoder": run.resolved.encoder, "minutes": minutes,
            "precision": run.summary["precision"], "epochs": run.summary.get("epochs"),
            "steps": run.summary.get("steps"), "img_per_s": round(run.summary["samples_per_s"], 1),
            "train_s": round(trained, 1), "evaluate_s": round(time.perf_counter() - start - trained, 1),
            "protocols": ev["protocols"]}


def commands(device: torch.device) -> dict:
    """The README main job and a one-process torchrun job on `device`, as a user types them."""
    import subprocess  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        jobs = {"main_job": [sys.executable, "-m", "selfsup", "train", "--data", "digits", "--epochs", "30", "--out",
                             f"{tmp}/digits", "--overwrite", "--cluster", "10", "--device", str(device)],
                "torchrun_1_process": [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "-m",
                                       "selfsup", "train", "--data", "digits", "--epochs", "5", "--out",
                                       f"{tmp}/ddp", "--device", str(device)]}
        for name, argv in jobs.items():
            start = time.perf_counter()
            done = subprocess.run(argv, capture_output=True, text=True, timeout=240)
            out[name] = {"argv": " ".join(a.replace(tmp, "TMP") for a in argv[1:]), "rc": done.returncode,
                         "seconds": round(time.perf_counter() - start, 1),
                         "stdout_tail": done.stdout.replace(tmp, "TMP").splitlines()[-14:],
                         "stderr_tail": done.stderr.replace(tmp, "TMP").splitlines()[-4:]}
            print(name, out[name]["rc"], *out[name]["stdout_tail"], *out[name]["stderr_tail"], sep="\n", flush=True)
    return out


def _acc(protocols: dict, name: str, who: str) -> str:
    return f"{protocols[name][who]['acc']:.3f}"


def gpu_table(result: dict) -> str:
    """The GPU block of docs/benchmarks.md: throughput of the bare step and the whole loop, the every-pair check, the
    README main job and the Fashion-MNIST preset on the GPU, all from the result file."""
    dev, tp = result["device"], result["throughput"]
    cells = {(r["encoder"], r["batch_size"], r["precision"]): r["img_per_s"] for r in tp["bare_step"]}
    sizes = {r["encoder"]: r["size"] for r in tp["bare_step"]}
    head = [(b, p) for b in (256, 1024) for p in ("bf16", "fp32")]
    lines = [f"{dev['name']} (compute capability {dev['capability']}, CUDA {dev['cuda']}, torch "
             f"{result['machine']['torch']}), images/s of SimCLR (projection 512-512-128), channels_last:", "",
             "| | " + " | ".join(f"batch {b}, {p}" for b, p in head) + " |", "|---" * (len(head) + 1) + "|"]
    for enc, size in sizes.items():
        lines.append(f"| bare step, {enc} at {size} px | " +
                     " | ".join(f"{cells[(enc, b, p)]:,.0f}" for b, p in head) + " |")
    loops = {r["batch_size"]: r for r in tp["whole_loop"]}
    lines.append("| whole training loop, convnet4 on Fashion-MNIST (views made on the GPU), `auto` precision | " +
                 " | ".join(f"{loops[b]['img_per_s']:,.0f} ({loops[b]['precision']})" if p == "bf16" and b in loops
                            else "" for b, p in head) + " |")
    sm, job, fm = result["smoke"], result["commands"]["main_job"], result["fmnist"]
    main = {l.split()[0] + " " + l.split()[1]: l.split()[-3:] for l in job["stdout_tail"]
            if l.startswith(("knn acc (k=20)", "linear acc"))}
    lines += ["", f"Every (method, modality) pair trains one epoch and embeds on the GPU with `--device cuda`: "
              f"**{sm['passed']} of {sm['pairs']}** pass (finite loss, finite embeddings of the declared width). "
              f"The README main job with `--device cuda` (rc {job['rc']}, {job['seconds']:.0f} s with SCAN "
              f"clustering): kNN {main['knn acc'][0]} and linear {main['linear acc'][0]} against raw pixels "
              f"{main['knn acc'][1]} / {main['linear acc'][1]}. The Fashion-MNIST preset ({fm['method']}, "
              f"{fm['encoder']}) for {fm['minutes']} minutes on the GPU ({fm['epochs']:.0f} epochs, "
              f"{fm['img_per_s']:,.0f} images/s, {fm['precision']}): kNN {_acc(fm['protocols'], 'knn', 'selfsup')}"
              f" and linear {_acc(fm['protocols'], 'linear', 'selfsup')}, against raw pixels "
              f"{_acc(fm['protocols'], 'knn', 'raw')} / {_acc(fm['protocols'], 'linear', 'raw')} and the random "
              f"encoder {_acc(fm['protocols'], 'knn', 'random_encoder')} / "
              f"{_acc(fm['protocols'], 'linear', 'random_encoder')} (one seed, test split)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="throughput,smoke,commands,fmnist")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seconds", type=float, default=4, help="seconds per bare-step measurement")
    parser.add_argument("--smoke-seconds", type=float, default=200, help="stop starting smoke pairs after this")
    parser.add_argument("--only-pairs", help="comma-separated METHOD-MODALITY pairs for the smoke part")
    parser.add_argument("--fmnist-minutes", type=float, default=2.0)
    parser.add_argument("--name", default="gpu_check", help="result file benchmarks/results/NAME.json")
    parser.add_argument("--update", action="store_true",
                        help="keep the parts of an existing result file that this invocation does not run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    command = "python benchmarks/gpu_check.py " + " ".join(sys.argv[1:])
    path = RESULTS / f"{args.name}.json"
    result = json.loads(path.read_text()) if args.update and path.exists() else {}
    result.update({"device": device_info(device), "machine": machine()})
    only = set(args.only_pairs.split(",")) if args.only_pairs else None
    parts = {"throughput": lambda: throughput(device, args.seconds),
             "smoke": lambda: smoke(device, args.smoke_seconds, only),
             "commands": lambda: commands(device), "fmnist": lambda: fmnist(device, args.fmnist_minutes)}
    for part in args.parts.split(","):
        try:
            result[part] = parts[part]()
        except Exception as exc:  # noqa: BLE001 - a part that breaks is recorded, the others still run
            result[part] = {"error": f"{type(exc).__name__}: {exc}", "where": traceback.format_exc().splitlines()[-8:]}
        result[part]["measured_by"] = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                                       "device": result["device"].get("name", device.type), "torch": torch.__version__}
        publish(args.name, result, False, f"{part} done")
    summary = {k: (v.get("passed"), v.get("run")) if k == "smoke" else "done" for k, v in result.items()
               if k in parts}
    publish(args.name, result, args.json, f"{summary}")


if __name__ == "__main__":
    main()
