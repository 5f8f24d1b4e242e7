"""Training throughput on the reference configuration of benchmarks protocol "Fashion-MNIST, CPU budget".

ConvNet-4, SimCLR (projection 512-512-128, NT-Xent T=0.5), batch 256, two views per image, SGD momentum
0.9, 2 threads. Reports images/s over the whole training loop (data, augmentation, forward, backward,
step), the fp32 eager ceiling (the same step on a pre-made batch, default NCHW layout, malloc as it is), and
selfsup's own ceiling with its optimisations (channels_last, bf16 where native, the step's large buffers kept in
the heap between steps as its training runs do: training/heap.py), the same with torch.compile, and the time
to make both views of a batch (its share of an end-to-end step), all measured in this one process; then
LightlySSL 1.6.0's whole loop on the same configuration (benchmarks/lightly_simclr.py, in the reference environment
of scripts/reference_env.sh) for the same seconds, right after, so the ratio of the two is measured in one run;
the two loops alternate --rounds times and the medians are reported (every round kept in the result).

    python benchmarks/throughput.py --seconds 60 --rounds 3 --json

Written to benchmarks/results/throughput.json on a machine with native bf16, throughput_avx2.json elsewhere.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import lightly_simclr, machine, publish, reference_python  # noqa: E402

import selfsup  # noqa: E402
from selfsup.loading import load_dataset  # noqa: E402
from selfsup.methods.simclr import SimCLR  # noqa: E402
from selfsup.modalities.image.encoders import ConvNet4  # noqa: E402
from selfsup.training.heap import retained_heap  # noqa: E402
from selfsup.training.step import autocast_context  # noqa: E402
from selfsup.views import Views  # noqa: E402
from selfsup.training.devices import cpu_has_native_bf16, resolve_precision  # noqa: E402

BATCH = 256
#: selfsup's whole loop over LightlySSL's, measured in one run, by result file (machine kind)
TARGET_OVER_LIGHTLY = {"throughput": 3.0, "throughput_avx2": 2.0}
METHOD_OPTIONS = {"proj_hidden_dim": 512, "proj_dim": 128, "temperature": 0.5}


def training_step(method: torch.nn.Module, views: Views, device: torch.device, precision: str):
    """One SGD step (momentum 0.9, lr 0.03) of `method` on the pre-made `views`, as a function of no argument."""
    opt = torch.optim.SGD(method.parameters(), lr=0.03, momentum=0.9)

    def step() -> None:
        with autocast_context(device, precision):
            loss, _ = method(views)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def ceiling(x: torch.Tensor, seconds: float, channels_last: bool, precision: str, compile: bool = False) -> float:
    """Images/s of the bare training step on one pre-made batch of two views."""
    torch.manual_seed(0)
    method = SimCLR(ConvNet4(1), **METHOD_OPTIONS)
    views = Views([x, x.flip(-1)])
    if channels_last:
        method = method.to(memory_format=torch.channels_last)
        views = views.map(lambda v: v.contiguous(memory_format=torch.channels_last))
    if compile:
        method.encoder.compile()
    step = training_step(method, views, torch.device("cpu"), precision)
    for _ in range(3):
        step()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n < 3:
        step()
        n += 1
    return BATCH * n / (time.perf_counter() - start)


def profile_step(x: torch.Tensor, precision: str, steps: int = 6, top: int = 12) -> dict:
    """Where one selfsup training step (channels_last, `precision`) spends its time (torch.profiler, self CPU time
    per operator)."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    method = SimCLR(ConvNet4(1), **METHOD_OPTIONS).to(memory_format=torch.channels_last)
    views = Views([v.contiguous(memory_format=torch.channels_last) for v in (x, x.flip(-1))])
    step = training_step(method, views, torch.device("cpu"), precision)
    step()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(steps):
            step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    groups = {"convolution (forward + backward)": ("conv", "mkldnn_convolution"),
              "batch norm": ("batch_norm",), "relu / threshold": ("relu", "threshold"),
              "max pool": ("max_pool",), "matmul / linear (heads, loss)": ("mm", "addmm", "linear", "matmul")}
    shares = {g: round(sum(e.self_cpu_time_total for e in events if any(k in e.key for k in keys)) / total, 3)
              for g, keys in groups.items()}
    return {"steps": steps, "precision": precision, "ms_per_step": round(total / 1000 / steps, 1), "share_by_kind": shares,
            "top_ops": [{"op": e.key, "share": round(e.self_cpu_time_total / total, 3)} for e in events[:top]],
            "convolutions": convolution_rates(prof)}


def convolution_rates(prof) -> list[dict]:
    """Each convolution's forward and backward rate in GFLOP/s (2 multiply-adds per weight tap and output value;
    the backward computes the input's gradient too where the input needs one, the first layer's does not), from
    the profiler's self time grouped by input shape: what the matmul rate of the same precision is to be held
    against."""
    rows = []
    for e in prof.key_averages(group_by_input_shape=True):
        if e.key not in ("aten::mkldnn_convolution", "aten::convolution_backward"):
            continue
        forward = e.key == "aten::mkldnn_convolution"
        out_shape, weight = (None, e.input_shapes[1]) if forward else (e.input_shapes[0], e.input_shapes[2])
        x = e.input_shapes[0] if forward else e.input_shapes[1]
        n, c_out, h, w = out_shape if out_shape else (x[0], weight[0], x[2], x[3])  # 3x3, stride 1, padding 1
        macs = n * c_out * h * w * weight[1] * weight[2] * weight[3]
        passes = 1 if forward else (1 if weight[1] == 1 else 2)
        seconds = e.self_cpu_time_total / 1e6 / e.count
        rows.append({"op": "forward" if forward else "backward", "input": list(x), "weight": list(weight),
                     "ms": round(seconds * 1000, 1), "gflop_per_s": round(2 * macs * passes / seconds / 1e9, 1)})
    return sorted(rows, key=lambda r: (r["weight"][1], r["op"] != "forward"))


def augmentation_ms(data: torch.Tensor, seconds: float) -> float:
    """Median milliseconds to make both views of a batch of 256 uint8 images (the SimCLR recipe)."""
    from selfsup.modalities.image.modality import ImageModality
    from selfsup.views import ViewRequest

    spec = {"channels": 1, "size": 28, "height": 28, "width": 28, "mean": [0.2860], "std": [0.3530]}
    make = ImageModality().view_maker(ViewRequest("instance"), spec)
    gen = torch.Generator().manual_seed(0)
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 5:
        t = time.perf_counter()
        make(data[torch.randint(len(data), (BATCH,), generator=gen)], gen)
        times.append(time.perf_counter() - t)
    return 1000 * float(torch.tensor(times).median())


def end_to_end(seconds: float) -> dict:
    """selfsup's real training loop on Fashion-MNIST for `seconds` (no monitoring, no evaluation)."""
    run = selfsup.train("fashion-mnist", method="simclr", encoder="convnet4", minutes=seconds / 60,
                        batch_size=BATCH, optimizer="sgd", lr=0.03, method_options=METHOD_OPTIONS, monitor=False)
    return {"img_per_s": run.summary["samples_per_s"], "steps": run.summary["steps"],
            "precision": run.resolved.precision, "channels_last": run.config.channels_last}


def lightly_loop(seconds: float) -> dict:
    """LightlySSL 1.6.0's whole training loop on the reference configuration for `seconds` (one embedding of the
    training images at the end, outside its clock)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="selfsup-lightly-") as out:
        run = lightly_simclr(reference_python(), seconds / 60, 0, Path(out), every=1e9)
    return {k: run[k] for k in ("library", "torch", "img_per_s", "steps", "train_seconds")}


def alternated(seconds: float, rounds: int, lightly: bool) -> tuple[dict, dict | None]:
    """selfsup's loop and LightlySSL's, one after the other, `rounds` times: the medians of each library's images/s
    and of the per-round ratios, with every round kept (two loops measured minutes apart on a shared machine
    differ by up to a fifth; alternating them lets both see the same drift)."""
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(end_to_end(seconds))
        if lightly:
            theirs.append(lightly_loop(seconds))
    e2e = {**ours[0], "img_per_s": statistics.median(r["img_per_s"] for r in ours),
           "steps": sum(r["steps"] for r in ours), "rounds_img_per_s": [round(r["img_per_s"], 1) for r in ours]}
    if not lightly:
        return e2e, None
    ratios = [a["img_per_s"] / b["img_per_s"] for a, b in zip(ours, theirs)]
    peer = {**theirs[0], "img_per_s": round(statistics.median(r["img_per_s"] for r in theirs), 1),
            "steps": sum(r["steps"] for r in theirs),
            "train_seconds": round(sum(r["train_seconds"] for r in theirs), 1),
            "rounds_img_per_s": [round(r["img_per_s"], 1) for r in theirs],
            "selfsup_over_lightly_by_round": [round(x, 3) for x in ratios],
            "selfsup_over_lightly": round(statistics.median(ratios), 3)}
    return e2e, peer


def matmul_gflops(dtype: torch.dtype, seconds: float = 2.0, n: int = 2048) -> float:
    """Achieved GFLOP/s of a large square matmul in `dtype` with the current threads: what this CPU can do."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or count < 2:
        a @ b
        count += 1
    return 2 * n ** 3 * count / (time.perf_counter() - start) / 1e9


def result_name(native_bf16: bool) -> str:
    """The result file of this machine kind (detected): throughput.json where bf16 is native (AVX-512 + bf16),
    throughput_avx2.json elsewhere (the fp32 path), so a run on one kind never overwrites the other's figures."""
    return "throughput" if native_bf16 else "throughput_avx2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="seconds per measurement")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="selfsup's and LightlySSL's loops alternated this many "
                        "times (medians reported)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile ceiling (~30 s to compile)")
    parser.add_argument("--no-lightly", action="store_true", help="skip LightlySSL's loop (its environment is built "
                        "by scripts/reference_env.sh on first use)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset("fashion-mnist")
    spec = {"height": 28, "width": 28, "mean": [0.2860], "std": [0.3530]}
    from selfsup.modalities.image.modality import ImageModality
    x = ImageModality().prepare(ds.train.x[:BATCH], spec)
    precision = resolve_precision("auto", torch.device("cpu"))
    fp32 = ceiling(x, args.seconds / 2, channels_last=False, precision="fp32")  # plain PyTorch: malloc as it is
    gemm = {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}
    with retained_heap() as retained:  # what selfsup's training runs under (training/heap.py)
        own = ceiling(x, args.seconds / 2, channels_last=True, precision=precision)
        own_fp32 = ceiling(x, args.seconds / 2, channels_last=True, precision="fp32") if precision != "fp32" else own
        compiled = ceiling(x, args.seconds / 2, channels_last=True, precision=precision, compile=True) \
            if not args.no_compile else None
        aug_ms = augmentation_ms(ds.train.x, args.seconds / 4)
        prof = profile_step(x, precision)
    e2e, peer = alternated(args.seconds, args.rounds, not args.no_lightly)
    name = result_name(cpu_has_native_bf16())
    result = {
        "protocol": "Fashion-MNIST, CPU budget: reference configuration (ConvNet-4, SimCLR 512-512-128, T=0.5, "
                    "batch 256, SGD momentum 0.9)",
        "command": "python benchmarks/throughput.py " + " ".join(sys.argv[1:]),
        "img_per_s": round(e2e["img_per_s"], 1),
        "ceiling_fp32_img_per_s": round(fp32, 1),
        "ceiling_selfsup_img_per_s": round(own, 1),
        "end_to_end_over_fp32_ceiling": round(e2e["img_per_s"] / fp32, 3),
        "end_to_end_over_selfsup_ceiling": round(e2e["img_per_s"] / own, 3),
        "channels_last_speedup": round(own / fp32, 3),
        "ceiling_compiled_img_per_s": round(compiled, 1) if compiled else None,
        "compile_speedup": round(compiled / own, 3) if compiled else None,
        "augmentation_ms_per_batch": round(aug_ms, 2),
        "augmentation_share_of_step": round(aug_ms / 1000 / (BATCH / e2e["img_per_s"]), 4),
        "profile_selfsup_step": prof,
        "precision": precision,
        "ceiling_channels_last_fp32_img_per_s": round(own_fp32, 1),
        "matmul_gflop_per_s": {k: round(v, 1) for k, v in gemm.items()},
        "flops_note": "ConvNet-4 on 28x28: ~80 MFLOP forward per view, so ~480 MFLOP per image (two views, forward "
                      "+ backward); achieved_gflop_per_s is that times img_per_s, to compare with matmul_gflop_per_s "
                      "(a 2048^2 matmul on this machine, the same threads) in the precision used",
        "achieved_gflop_per_s": round(0.48 * e2e["img_per_s"], 1),
        "retained_heap": retained,
        "defaults": f"channels_last on; freed memory kept in the heap between steps (glibc: {retained}); "
                    f"torch.compile off (--compile; compile_speedup here: "
                    f"{round(compiled / own, 3) if compiled else 'not measured'}); --precision auto chose "
                    f"{precision} here (native bf16 detected: {cpu_has_native_bf16()})",
        "settings": {"seconds": args.seconds, "threads": args.threads, "batch_size": BATCH, **e2e},
        "peer_reference": {"lightly_1.6.0_img_per_s": 359, "lightly_over_fp32_ceiling": 0.86,
                           "source": "shared/reference/anchors.md (measured on a "
                                     "2-core machine with avx512_bf16, in another run)"},
        "lightly_same_run": None if peer is None else {
            **peer, "lightly_over_fp32_ceiling": round(peer["img_per_s"] / fp32, 3),
            "target": TARGET_OVER_LIGHTLY[name]},
        "machine": machine(),
    }
    publish(name, result, args.json,
            f"end to end {result['img_per_s']} img/s | fp32 eager ceiling {result['ceiling_fp32_img_per_s']} | "
            f"selfsup ceiling {result['ceiling_selfsup_img_per_s']}")


#: the speed table's rows: (label, key of the result file)
SPEED_ROWS = [
    ("selfsup, whole training loop (data, views, forward, backward, step)", "img_per_s"),
    ("fp32 eager ceiling (the bare step on a pre-made batch, NCHW)", "ceiling_fp32_img_per_s"),
    ("channels_last, fp32", "ceiling_channels_last_fp32_img_per_s"),
    ("selfsup's own ceiling (channels_last + `auto` precision)", "ceiling_selfsup_img_per_s"),
    ("the same + `torch.compile` (so off by default, `--compile` turns it on)", "ceiling_compiled_img_per_s"),
]


def speed_table(results: list[dict]) -> str:
    """The speed table of docs/benchmarks.md: images/s and the ratio to the fp32 eager ceiling measured in the same
    run, one column pair per result file (machine kind and precision from its detection record); LightlySSL's
    published figure in the columns of the machine kind it was measured on (native bf16)."""
    def kind(r: dict) -> str:
        return f"{'AVX-512 + bf16' if r['machine']['native_bf16'] else 'AVX2'}, {r['precision']} ({r['written'][:10]})"

    head = "| | " + " | ".join(f"{kind(r)} | / its fp32 ceiling" for r in results) + " |"
    lines = [head, "|---|" + "---|---|" * len(results)]
    for i, (label, key) in enumerate(SPEED_ROWS):
        cells = [(f"{r[key]:.0f}", f"{r[key] / r['ceiling_fp32_img_per_s']:.2f}") for r in results]
        cells = [(f"**{a}**", f"**{b}**") if i == 0 else (a, b) for a, b in cells]
        lines.append(f"| {label} | " + " | ".join(f"{a} | {b}" for a, b in cells) + " |")
    same_run = [bool(r.get("lightly_same_run")) for r in results]

    def peer(r: dict) -> tuple[str, str]:
        same, published = r.get("lightly_same_run"), r["peer_reference"]
        if same:
            return f"{same['img_per_s']:.0f}", f"{same['lightly_over_fp32_ceiling']:.2f}"
        if any(same_run) or not r["machine"]["native_bf16"]:
            return "", ""
        return f"{published['lightly_1.6.0_img_per_s']}", f"{published['lightly_over_fp32_ceiling']}"

    said = "measured in the same run" if all(same_run) else (
        "measured in the same run; where a column has none, not measured") if any(same_run) else \
        "published in shared/reference/anchors.md, 2-core avx512_bf16"
    lines.append(f"| LightlySSL 1.6.0, whole loop ({said}) | " + " | ".join(" | ".join(peer(r)) for r in results)
                 + " |")
    ratios = [f"{r['lightly_same_run']['selfsup_over_lightly']:.2f}" if r.get("lightly_same_run") else ""
              for r in results]
    if any(ratios):
        lines.append("| selfsup's whole loop / LightlySSL's, same run | "
                     + " | ".join(f"**{x}** | " if x else " | " for x in ratios) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
