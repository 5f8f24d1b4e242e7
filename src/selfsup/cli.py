"""The `selfsup` command line: train, embed, eval, and listings of methods, encoders and datasets."""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from urllib.parse import parse_qsl, urlencode
from pathlib import Path
from typing import Any, Sequence

import yaml

from .yaml_io import yaml_error_line
from .errors import ConfigError, SelfSupError
from .termination import Terminated, signal_number, sigterm_as_interrupt, stoppable

EXAMPLES = {
    "train": "selfsup train --data digits --method simclr --epochs 30 --out runs/digits-simclr\n"
             "  selfsup train --data fashion-mnist --method byol --minutes 10 --out runs/fmnist\n"
             "  selfsup train --config runs/digits-simclr/config.yaml --out runs/again\n"
             "  selfsup train --resume runs/fmnist    # continue an interrupted run from its checkpoint\n"
             "  torchrun --nproc_per_node 4 -m selfsup train --data fashion-mnist --batch-size 128 --out runs/ddp",
    "embed": "selfsup embed runs/digits-simclr --data digits --split test --out test_embeddings.npy\n"
             "  selfsup embed runs/gunpoint --data ucr:GunPoint --per-timestep --out steps.npy",
    "eval": "selfsup eval runs/digits-simclr --data digits --json",
    "cluster": "selfsup cluster runs/digits-simclr --k 10 --out clusters.csv",
    "prepare": "selfsup prepare folder:photos --out cache/photos --size 96 && "
               "selfsup train --data prepared:cache/photos --out runs/photos",
    "methods": "selfsup methods",
    "encoders": "selfsup encoders",
    "datasets": "selfsup datasets",
    "report": "selfsup report runs/digits-simclr    # writes runs/digits-simclr/report.html",
    "compare": "selfsup compare runs/digits-simclr runs/digits-byol --markdown\n"
               "  selfsup compare runs/digits-simclr runs/digits-byol runs/digits-vicreg --html compare.html",
    "export": "selfsup export runs/digits-simclr --format onnx    # writes runs/digits-simclr/encoder.onnx",
}


def key_values(items: Sequence[str] | None, flag: str) -> dict[str, Any]:
    """['temperature=0.2', 'proj_dim=64'] -> {'temperature': 0.2, 'proj_dim': 64} (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{flag} {item}: the value is not valid YAML ({yaml_error_line(exc)})") from None
    return out


def add_train_parser(sub) -> None:
    p = subcommand(sub, "train", "pre-train an encoder without labels")
    add_config_flags(p)
    p.add_argument("--out", help="run directory to create (required unless --resume)")
    p.add_argument("--resume", metavar="RUN", help="continue the interrupted run RUN (RUN.partial) from its last "
                   "checkpoint with its saved configuration")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it holds a finished run")
    p.add_argument("--config", help="a run's config.yaml to start from; other flags override it")
    add_table_flags(p)
    p.add_argument("--search", type=float, nargs="?", const=-1.0, metavar="MINUTES",
                   help="choose the method without labels within MINUTES (or --minutes): screen the data's preset "
                        "and the modality's methods by successive halving, ranked by a label-free criterion, then "
                        "train the winner for the rest of the budget (RUN/search.json keeps the record)")
    p.add_argument("--search-criterion", dest="search_criterion",
                   help="what --search ranks by: view_retrieval, rankme, lidar or alpha_req (default: the "
                        "modality's Modality.search_criterion: rankme on audio, view_retrieval elsewhere)")
    p.add_argument("--no-eval", action="store_true", help="skip evaluation (and the report) after training")
    p.add_argument("--no-report", action="store_true", help="skip report.html after training")
    p.add_argument("--cache", metavar="DIR", help="decode --data (folder:, tar:, parquet:, hf:) once into a memory-mapped cache DIR "
                   "(selfsup prepare), reused by later runs; training reads prepared:DIR")
    p.add_argument("--cluster", metavar="K", help="after training, find the groups in the training data: SCAN "
                   "into K clusters or 'auto' (as `selfsup cluster`); kept in RUN/clusters.csv and the report")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object (summary and evaluation) on stdout")


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, from its declaration (config.option): the spelling of option_flag,
    the type of its annotation, its help, choices and metavar; booleans as --NAME / --no-NAME, mappings as
    KEY=VALUE items, lists comma-separated. Every flag defaults to None: not given, so the config decides."""
    from dataclasses import fields

    from .config import TrainConfig, option_flag, option_kinds

    kinds = option_kinds()
    groups: dict[str, Any] = {}
    for f in fields(TrainConfig):
        meta = dict(f.metadata)
        group = meta.pop("group", None)
        if group is not None and group not in groups:
            groups[group] = p.add_mutually_exclusive_group()
        target = groups[group] if group is not None else p
        kind = kinds[f.name]
        kw: dict[str, Any] = {"dest": f.name, "default": None, **meta}
        if kind is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif kind is dict:
            kw.update(action="extend", nargs="+")
        elif kind is list:
            kw["type"] = lambda text: [name for name in text.split(",") if name]
        else:
            kw["type"] = kind
        target.add_argument(option_flag(f.name), **kw)


def cmd_train(args: argparse.Namespace) -> int:
    args.cluster = cluster_count(args.cluster, "--cluster")  # checked before training, used after it
    from .presets import with_preset
    from .config import TrainConfig, merge_options, option_flag, option_kinds
    from .training.distributed import is_main_process
    from .training.session import resume, train

    base = TrainConfig.from_yaml(args.config).to_dict() if args.config else {}
    kinds = option_kinds()  # mappings (KEY=VALUE items) are merged over --config's below, the rest replace them
    given = {name: getattr(args, name) for name in kinds}
    overrides = {k: v for k, v in given.items() if v is not None and kinds[k] is not dict}
    if args.resume:
        if args.search is not None or args.search_criterion is not None:
            raise ConfigError("--resume continues a run; to carry on an interrupted search give its --search "
                              "command again")
        if args.out is not None and Path(args.out) != Path(args.resume):
            raise ConfigError("--resume RUN continues RUN; drop --out (or give the same path)")
        for flag, value in (("--config", args.config), ("--method-option", args.method_options),
                            ("--encoder-option", args.encoder_options), ("--augment", args.augmentation),
                            ("--overwrite", args.overwrite or None)):
            if value:
                raise ConfigError(f"--resume continues {args.resume} with its saved configuration; drop {flag}")
        run = resume(args.resume, progress=not args.quiet and not args.json, overrides=overrides)
        args.out = args.resume
        return finish_train(args, run, run.config)
    if args.out is None:
        raise ConfigError("--out is required (the run directory to create), or --resume RUN")
    if args.search is not None:
        return cmd_train_search(args, base, overrides)
    if args.search_criterion is not None:
        raise ConfigError("--search-criterion goes with --search")
    if args.epochs is not None or args.minutes is not None:
        base.pop("epochs", None)
        base.pop("minutes", None)
    overrides.update({k: key_values(v, option_flag(k)) for k, v in given.items() if kinds[k] is dict and v})
    if args.method and args.config and "method_options" not in overrides and args.method != base.get("method"):
        base["method_options"] = {}
    if not args.config:
        overrides, args.preset = with_preset(overrides.get("data", TrainConfig.data), overrides)
    if args.cache:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError("--cache under torchrun: prepare the cache once first (selfsup prepare SOURCE --out "
                              "DIR), then train every process on --data prepared:DIR")
        from .preparation import prepare

        prepare(overrides.get("data", base.get("data", TrainConfig.data)), args.cache,
                progress=not args.quiet and not args.json, option="--cache")
        overrides["data"] = f"prepared:{args.cache}"
    cfg = TrainConfig.from_dict(merge_options(base, overrides), "command line")
    run = train(cfg, args.out, progress=not args.quiet and not args.json, overwrite=args.overwrite)
    if not is_main_process():  # torchrun: rank 0 reports, evaluates and writes
        return 0
    return finish_train(args, run, cfg)


def cmd_train_search(args: argparse.Namespace, base: dict[str, Any], overrides: dict[str, Any]) -> int:
    """`train --search`: screen candidates without labels, then train the winner into --out (selfsup.search)."""
    from .search import search_and_train

    minutes = args.minutes if args.search < 0 else args.search
    for flag, given in (("--method", args.method), ("--encoder", args.encoder), ("--config", args.config),
                        ("--epochs", args.epochs), ("--method-option", args.method_options),
                        ("--cache", args.cache)):
        if given:  # named as the user typed them (selfsup.search refuses the options too)
            raise ConfigError(f"--search chooses the method and trains for its budget; drop {flag}")
    if minutes is None or minutes <= 0:
        raise ConfigError("--search needs a budget: --search MINUTES (or --search with --minutes MINUTES)")
    if args.minutes is not None and args.search >= 0 and args.minutes != args.search:
        raise ConfigError(f"--search {args.search:g} and --minutes {args.minutes:g} disagree; give one budget")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("--search runs in one process; search first, then train its choice under torchrun")
    options = {**base, **{k: v for k, v in overrides.items() if k not in ("epochs", "minutes")}}
    if args.augmentation:
        options["augmentation"] = key_values(args.augmentation, "--augment")
    if args.encoder_options:  # every candidate's encoder takes them (one that refuses them ranks last)
        options["encoder_options"] = key_values(args.encoder_options, "--encoder-option")
    run, doc = search_and_train(options, Path(args.out), minutes, args.search_criterion,
                                progress=not (args.quiet or args.json), overwrite=args.overwrite)
    args.preset = None
    return finish_train(args, run, run.config, search=doc)


def finish_train(args: argparse.Namespace, run, cfg, search: dict[str, Any] | None = None) -> int:
    """After training: print the summary, evaluate, cluster (--cluster) and write the report (rank 0 only under
    torchrun). The evaluation's imports (scikit-learn, about a second) are made only where it runs."""
    from .run import load
    from .training.distributed import is_main_process

    if not is_main_process():
        return 0
    out: dict[str, Any] = {"run": str(args.out), "summary": run.summary}
    if search is not None:
        out["search"] = search
        if not args.json:
            print(format_search(search))
    if not args.json:
        s = run.summary
        print(f"trained {s['method']} / {s['encoder']} on {s['data']}: {s['steps']} steps, {s['epochs']} epochs in "
              f"{s['train_seconds']:.1f} s ({s['samples_per_s']:.0f} samples/s), final loss {s['final_loss']:.4f}")
        print(f"run directory: {args.out}")
        if s.get("data_path", "memory") != "memory":
            print(f"data: {s['data_path']}")
        preset = getattr(args, "preset", None)
        if preset is not None:
            print(f"configuration: the measured preset for {s['data']} ({preset.chosen_by}; {preset.results}); "
                  f"--method or --encoder chooses your own")
    if not args.no_eval or args.cluster is not None:
        run = load(args.out)
    if not args.no_eval:
        from .evaluate import evaluate_run, format_results

        try:
            results = evaluate_run(run, cfg.data)
        except ConfigError as exc:  # unlabelled data: nothing to evaluate against
            results = {"skipped": str(exc)}
        else:
            from .artifacts import write_json
            write_json(Path(args.out) / "eval.json", results)
        out["eval"] = results
        if not args.json:
            print(format_results(results) if "skipped" not in results else f"evaluation skipped: {results['skipped']}")
    if args.cluster is not None:
        from .cluster import cluster_run, format_clustering

        clustering = cluster_run(run, cfg.data, args.cluster)
        keep_clustering_in_run(Path(args.out), clustering)
        out["clusters"] = clustering.info
        if not args.json:
            print(format_clustering(clustering) + f"\nclusters: {Path(args.out) / 'clusters.csv'}")
    if not args.no_eval and not args.no_report and "skipped" not in out["eval"]:
        out["report"] = write_report_if_possible(run)
        if not args.json:
            print(f"report: {out['report']}")
    if args.json:
        print(json.dumps(out, default=str))
    return 0


def format_search(doc: dict[str, Any]) -> str:
    """The search's rounds as lines: each candidate's criterion score, the kept ones marked."""
    lines = [f"search by {doc['criterion']} (labels not used), {len(doc['candidates'])} candidates:"]
    for r in doc["rounds"]:
        scores = {s["candidate"]: s["scores"][doc["criterion"]] for s in doc["screens"] if s["round"] == r["round"]}
        lines.append(f"  round {r['round'] + 1}: " + ", ".join(
            f"{name} {scores[name]:.4g}{' *' if name in r['kept'] else ''}" for name in r["ranking"]))
    lines.append(f"  choice: {doc['why']}")
    return "\n".join(lines)


def write_report_if_possible(run) -> str:
    """report.html when matplotlib is installed, else a note saying how to get it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "skipped (pip install 'selfsup[report]' for report.html)"
    from .report import build_report
    return str(build_report(run))


def single_process(command: str) -> bool:
    """embed/eval/report run in one process: under torchrun rank 0 does the work and the others exit."""
    from .training.distributed import env_world

    world = env_world()
    if world.distributed and world.is_main:
        print(f"selfsup {command} runs in a single process: rank 0 does it, the other {world.size - 1} "
              "process(es) exit", file=sys.stderr)
    return world.is_main


def conformed_split(run, ds, which: str, args: argparse.Namespace):
    """The dataset's split checked against the run (evaluate.conformed_split), notes printed on stderr."""
    from .evaluate import conformed_split as conform

    split, notes = conform(run, ds, which, args.resize, args.strict)
    for note in notes:
        print(f"selfsup: note: {note}", file=sys.stderr)
    return split


def cmd_embed(args: argparse.Namespace) -> int:
    """Under torchrun every process encodes its share of the batches and rank 0 writes the one output, equal to a
    single process's."""
    import numpy as np

    from .api import load
    from .artifacts import atomic_write_bytes
    from .loading import load_dataset
    from .run import encode_share, place_rows
    from .training import distributed

    out = Path(args.out)
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a folder; give a file name such as {out / 'embeddings.npy'}")
    run = load(args.run)
    budget = args.memory_budget if args.memory_budget is not None else run.config.memory_budget
    ds = load_dataset(args.data or run.config.data, args.data_dir or run.config.data_dir, run.resolved.modality,
                      None if budget is None else int(budget * 1e9))
    split = conformed_split(run, ds, args.split, args)
    source = split.x
    stream = ds.split(args.split).stream
    if stream is not None:  # too large for memory: every sample, decoded by worker processes while encoding
        if tuple(split.x.shape[1:]) != tuple(stream.sample_shape):
            raise ConfigError(f"--data {ds.name}: streamed samples of shape {tuple(stream.sample_shape)} cannot be "
                              f"adapted to the run's {tuple(split.x.shape[1:])}; give the run's size in the URI "
                              "(?size=)")
        source = stream
    world = distributed.init()
    share = distributed.agreed(world, lambda: encode_share(
        run.encoder, run.modality, run.spec, source, mask=split.mask, per_timestep=getattr(args, "per_timestep", False),
        part=world.rank, parts=world.size), main_only=False)
    shares = distributed.gather_arrays(share, world)
    if not world.is_main:
        return 0
    z = place_rows(len(source), shares)
    if args.whiten is not None:
        from .whitening import run_whitening

        z = run_whitening(run, whiten_dim(args.whiten)).transform(z)
    if args.with_raw:
        if stream is not None:
            raise ConfigError(f"--with-raw: --data {ds.name} is streamed from disk; raw features need it in memory "
                              "(raise --memory-budget)")
        from .run import with_raw_features

        z = with_raw_features(run, split.x, split.mask, z)
    import io
    buf = io.BytesIO()
    np.save(buf, z)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, buf.getvalue())
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write ({exc.strerror or exc})") from None
    print(f"wrote {' x '.join(map(str, z.shape))} embeddings of {ds.name} ({args.split}) to {out}", file=sys.stderr)
    return 0


def whiten_dim(text: str) -> int | None:
    """--whiten [DIM]: None keeps every direction, else a whole number of directions."""
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--whiten {text!r}: give a whole number of dimensions, or no value for all") from None


def add_whiten_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--whiten", nargs="?", const="all", metavar="DIM",
                   help="whiten the embeddings (BERT-whitening), keeping DIM directions (default all); fitted on "
                   "the run's training embeddings once and stored in the run")


def cluster_count(text: str | None, flag: str) -> int | str | None:
    """--k / --cluster: a whole number or 'auto' (None stays None)."""
    if text is None or text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{flag} must be a whole number or 'auto', got {text!r}") from None


def keep_clustering_in_run(run_dir: Path, result) -> None:
    """The run keeps its latest clustering (clusters.csv, clusters.json), which its report shows."""
    from .artifacts import atomic_write_bytes, write_json

    atomic_write_bytes(run_dir / "clusters.csv", result.table_bytes(".csv"))
    write_json(run_dir / "clusters.json", result.info)


def cmd_cluster(args: argparse.Namespace) -> int:
    if not single_process("cluster"):
        return 0
    from .artifacts import atomic_write_bytes, write_json
    from .cluster import cluster_run, format_clustering

    out = Path(args.out)
    if out.suffix not in (".csv", ".parquet"):
        raise ConfigError(f"--out {out}: give a .csv or .parquet file")
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a folder; give a file name such as {out / 'clusters.csv'}")
    args.k = cluster_count(args.k, "--k")
    result = cluster_run(args.run, args.data, args.k, args.method, args.split, resize=args.resize, strict=args.strict)
    for note in result.info.get("notes", []):
        print(f"selfsup: note: {note}", file=sys.stderr)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, result.table_bytes(out.suffix))
        write_json(out.with_suffix(".json"), result.info)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write ({exc.strerror or exc})") from None
    print(json.dumps(result.info) if args.json else format_clustering(result) + f"\nwrote {out} and "
          f"{out.with_suffix('.json')}")
    run_dir = Path(args.run)
    if (run_dir / "report.html").exists():  # the run keeps its latest clustering, and its report shows it
        keep_clustering_in_run(run_dir, result)
        from .api import load

        report = write_report_if_possible(load(run_dir))
        if not args.json:
            print(f"report: {report} (with a clusters section)")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    if not single_process("prepare"):
        return 0
    from .preparation import prepare

    manifest = prepare(args.source, args.out, args.size, args.mode, args.workers, args.skip_bad,
                       progress=not args.json)
    if args.json:
        print(json.dumps(manifest))
        return 0
    for name, split in manifest["splits"].items():
        print(f"{name}: {split['count']} samples of {'x'.join(map(str, split['shape'][1:]))} {split['dtype']}"
              + (f", {len(split['skipped'])} skipped (listed in the manifest)" if split["skipped"] else ""))
    print(f"prepared {manifest['source']} in {args.out}; train with --data prepared:{args.out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .api import load
    from .artifacts import write_json
    from .evaluate import evaluate_run, format_results

    if not single_process("eval"):
        return 0
    run = load(args.run)
    protocols = tuple(p.strip() for p in args.protocols.split(",") if p.strip())
    whitening = None
    if args.whiten is not None:
        from .whitening import run_whitening

        whitening = run_whitening(run, whiten_dim(args.whiten))
    results = evaluate_run(run, args.data, protocols, baselines=not args.no_baselines, data_dir=args.data_dir,
                           finetune=not args.no_finetune, resize=args.resize, strict=args.strict,
                           whitening=whitening)
    for note in results.get("notes", []):
        print(f"selfsup: note: {note}", file=sys.stderr)
    write_json(Path(args.run) / "eval.json", results)
    print(json.dumps(results, default=str) if args.json else format_results(results))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_encoder, sidecar_path

    if not single_process("export"):
        return 0
    path = export_encoder(args.run, args.format, args.out, opset=args.opset, overwrite=args.overwrite)
    info = json.loads(sidecar_path(path).read_text())
    if args.json:
        print(json.dumps(info))
    else:
        shape = lambda dims: "[" + ", ".join(map(str, dims)) + "]"  # noqa: E731
        print(f"wrote {path} ({args.format}): input {info['input']['dtype']} {shape(info['input']['shape'])}, output "
              f"{shape(info['output']['shape'])}; max abs difference from PyTorch "
              f"{info['check']['max_abs_diff']:.2g}; described in {sidecar_path(path)}", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import report

    if not single_process("report"):
        return 0
    print(report(args.run, args.data))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare_runs, markdown_table, terminal_table

    rows = compare_runs(args.runs)
    print(markdown_table(rows) if args.markdown else terminal_table(rows))
    if args.html:
        from .compare import write_html

        print(f"comparison page: {write_html(args.runs, args.html)}", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from .data import sources
    from .methods import methods
    from .modalities.base import modalities

    rows: list[tuple[str, str, str]] = []
    if args.command == "methods" and args.markdown:
        print(methods_markdown())
        return 0
    if args.command == "methods" and args.json:
        gains = measured_gains()
        print(json.dumps([{"name": e.name, "summary": e.summary, "paper": e.paper, "measured": gains.get(e.name)}
                          for e in methods]))
        return 0
    if args.command == "methods":
        rows = [(e.name, e.summary, e.paper) for e in methods]
    elif args.command == "datasets":
        import selfsup.modalities  # noqa: F401
        rows = [(e.name, e.summary, e.extra.get("modality", "")) for e in sources]
    else:
        import selfsup.modalities  # noqa: F401
        for m in modalities:
            rows += [(f"{e.name}", f"[{m.name}] {e.summary}", e.paper) for e in m.obj.encoders]
    if args.json:
        print(json.dumps([{"name": n, "summary": s, "paper": p} for n, s, p in rows]))
    else:
        width = max(len(r[0]) for r in rows) + 2
        for name, summary, paper in rows:
            print(f"{name:<{width}}{summary}" + (f"  ({paper})" if paper else ""))
        if args.command == "methods":
            print(not_above_random_lines())
    return 0


def measured_gains() -> dict[str, dict]:
    """Each method's gains over its untrained encoder on the home benchmarks (measured_gains.json, written by
    benchmarks/method_gains.py from the committed results): {method: {"verdict", "rows"}}."""
    from importlib.resources import files

    return json.loads(files("selfsup").joinpath("measured_gains.json").read_text())["methods"]


def gain_text(entry: dict | None) -> str:
    """'above: digits, 30 epochs: kNN +2.0, linear +1.1 (3 seeds)', or 'not measured'."""
    if not entry or not entry["rows"]:
        return "not measured"
    rows = [f"{r['benchmark']}: " + ", ".join(f"{k} {v:+.1f}" for k, v in r["gains"].items())
            + f" ({r['seeds']} seed{'s' if r['seeds'] > 1 else ''})" for r in entry["rows"]]
    return f"{entry['verdict']}: " + "; ".join(rows)


def not_above_random_lines() -> str:
    """Which methods do not yet beat their untrained encoder on every measured task, and which were not measured."""
    gains = measured_gains()
    behind = [f"{n} ({g['verdict']})" for n, g in gains.items() if g["verdict"] in ("below", "mixed")]
    unmeasured = [n for n, g in gains.items() if g["verdict"] == "not measured"]
    return (f"\nNot above their untrained encoder on every task measured (selfsup methods --json has the figures): "
            f"{', '.join(behind) or 'none'}.\nNot measured beside their untrained encoder: "
            f"{', '.join(unmeasured) or 'none'}.")


OPTIMISER_NAMES = {"lars": "LARS", "sgd": "SGD", "adamw": "AdamW", "adam": "Adam"}


def methods_markdown() -> str:
    """Every registered method as README's markdown table (`selfsup methods --markdown`; a test keeps them equal)."""
    from .compatibility import modalities_for
    from .methods import methods

    gains = measured_gains()
    lines = ["| name | what it does | paper | views | trains on | optimiser (paper) | gain over its untrained encoder "
             "(points) |", "|---|---|---|---|---|---|---|"]
    for entry in methods:
        opt = entry.obj.optimizer
        lr = {"linear": f"lr {opt.lr:g} x B/256", "sqrt": f"lr {opt.lr:g} x sqrt(B/256)"}.get(opt.lr_scaling,
                                                                                             f"lr {opt.lr:g}")
        views = entry.obj.requested_views
        lines.append(f"| `{entry.name}` | {entry.summary} | {entry.paper} | {views.recipe} | "
                     f"{', '.join(modalities_for(entry.name))} | {OPTIMISER_NAMES.get(opt.name, opt.name)}, {lr} | "
                     f"{gain_text(gains.get(entry.name))} |")
    return "\n".join(lines)


def add_conform_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resize", action="store_true", help="images of another size than the run's: resize them "
                   "(otherwise refused)")
    p.add_argument("--strict", action="store_true", help="tables: refuse columns the run was not trained on "
                   "(otherwise named and ignored)")


def add_table_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--label-column", dest="label_column", metavar="COL",
                   help="tables (csv:/parquet:): the label column, used for evaluation only (= ?label=COL)")
    p.add_argument("--categorical", metavar="A,B", help="tables: columns to treat as categorical "
                   "(default: auto-detected; = ?categorical=A,B)")


def data_with_table_flags(args: argparse.Namespace) -> None:
    """Fold --label-column / --categorical into the --data URI's query (where the table readers look)."""
    extra = {k: v for k, v in (("label", getattr(args, "label_column", None)),
                               ("categorical", getattr(args, "categorical", None))) if v}
    if not extra:
        return
    if not getattr(args, "data", None):
        raise ConfigError(f"--{'label-column' if 'label' in extra else 'categorical'} needs --data (a table)")
    head, _, query = args.data.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True))
    for key, value in extra.items():
        if key in options and options[key] != value:
            raise ConfigError(f"--data {args.data!r} already sets {key}={options[key]}; drop it or the flag")
        options[key] = value
    args.data = head + "?" + urlencode(options, safe=",/:")


def subcommand(sub, name: str, text: str) -> argparse.ArgumentParser:
    """A sub-command's parser with its help and its example."""
    return sub.add_parser(name, help=text, epilog="example:\n  " + EXAMPLES[name],
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def add_embed_parser(sub) -> None:
    p = subcommand(sub, "embed", "embed a dataset split with a trained run")
    p.add_argument("run")
    p.add_argument("--data", help="data source (default: the run's)")
    p.add_argument("--data-dir", dest="data_dir")
    p.add_argument("--memory-budget", type=float, dest="memory_budget", metavar="GB",
                   help="as for train: larger encoded image data is decoded by worker processes while encoding")
    add_table_flags(p)
    p.add_argument("--split", default="train", choices=["train", "test"])
    add_conform_flags(p)
    p.add_argument("--out", required=True, help="output .npy file")
    p.add_argument("--per-timestep", action="store_true", dest="per_timestep",
                   help="time series: one vector per time step (N x length x dim; padded steps are zeros)")
    add_whiten_flag(p)
    p.add_argument("--with-raw", action="store_true", dest="with_raw",
                   help="the raw baseline's features (tables: z-scored numeric columns, missing indicators, one-hot "
                        "categories) first, then the embedding, in one matrix: for a tree model that should see both")


def add_eval_parser(sub) -> None:
    p = subcommand(sub, "eval", "evaluate a run's frozen encoder with baselines")
    p.add_argument("run")
    p.add_argument("--data", help="labelled data source (default: the run's)")
    p.add_argument("--data-dir", dest="data_dir")
    add_table_flags(p)
    p.add_argument("--protocols", default="knn,linear,kmeans",
                   help="comma-separated: knn,linear,kmeans,fewshot,svm,svm_cv,transfer,trees (trees: gradient "
                   "boosting on the raw features, and beside each embedding; sentence pairs, sts:PATH: the STS "
                   "protocol)")
    add_conform_flags(p)
    p.add_argument("--no-baselines", action="store_true", help="skip raw-input and random-encoder baselines")
    p.add_argument("--no-finetune", action="store_true", help="with fewshot: skip fine-tuning the whole encoder")
    add_whiten_flag(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def add_export_and_report_parsers(sub) -> None:
    p = subcommand(sub, "export", "write a run's frozen encoder for deployment (ONNX or TorchScript)")
    p.add_argument("run")
    p.add_argument("--format", required=True, help="onnx (needs the extra 'export') or torchscript")
    p.add_argument("--out", help="file to write (default RUN/encoder.onnx or RUN/encoder.pt; PATH.json describes it)")
    p.add_argument("--opset", type=int, help="ONNX opset (default: torch's)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.add_argument("--json", action="store_true", help="print the description (PATH.json) as one JSON object")
    p = subcommand(sub, "report", "write RUN/report.html (curves, evaluation, embedding map)")
    p.add_argument("run")
    p.add_argument("--data", help="labelled data source for the embedding views (default: the run's)")


def add_cluster_parser(sub) -> None:
    p = subcommand(sub, "cluster", "find the groups in a trained run's embeddings (k-means, SCAN)")
    p.add_argument("run")
    p.add_argument("--data", help="data source (default: the run's)")
    p.add_argument("--split", default="train", choices=["train", "test"])
    p.add_argument("--k", default="auto", help="number of clusters, or 'auto' (best silhouette, says why)")
    p.add_argument("--method", default="scan", choices=["scan", "spectral", "umap", "kmeans"],
                   help="SCAN (default), spectral (equal-size spectral clustering of the embeddings' neighbour "
                        "graph), umap (k-means on the embeddings' UMAP manifold, N2D; needs the cluster extra) or "
                        "k-means only")
    p.add_argument("--out", required=True, help="clusters.csv or .parquet (index, cluster, confidence); "
                   "the details go beside it as .json")
    p.add_argument("--json", action="store_true", help="print the details as one JSON object")
    add_conform_flags(p)


def add_prepare_and_listing_parsers(sub) -> None:
    p = subcommand(sub, "prepare", "decode images once, in parallel, into a memory-mapped cache (series and "
                   "tables: parsed once into float arrays)")
    p.add_argument("source", help="images: folder:PATH, tar:SHARDS, parquet:FILES, hf:DIR (decoded in parallel); "
                   "any other source (ucr:, ts:, csv:, ...) is read once and its arrays written as they are")
    p.add_argument("--out", required=True, help="the cache folder (resumed if an earlier run was interrupted)")
    p.add_argument("--size", type=int, help="side in pixels (default: as folder:PATH, the images' own if all are "
                   "square and equal, else 64)")
    p.add_argument("--mode", choices=["L", "RGB"], help="default: L when every image is greyscale, else RGB")
    p.add_argument("--workers", type=int, help="decoding processes (default: every core)")
    p.add_argument("--skip-bad", action="store_true", dest="skip_bad",
                   help="leave out files that cannot be decoded (listed in the manifest) instead of stopping")
    p.add_argument("--json", action="store_true", help="print the manifest as one JSON object")
    p = subcommand(sub, "compare", "several runs' figures side by side")
    p.add_argument("runs", nargs="+")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.add_argument("--html", metavar="OUT", help="also write a self-contained page: verdicts side by side with the "
                   "shared baselines, training curves overlaid, configuration differences")
    for name, text in (("methods", "list methods"), ("encoders", "list encoders"), ("datasets", "list data sources")):
        p = subcommand(sub, name, text)
        p.add_argument("--json", action="store_true")
        if name == "methods":
            p.add_argument("--markdown", action="store_true", help="print README's markdown table")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="selfsup", description="Self-supervised representation learning: "
                                     "train an encoder without labels, embed data, evaluate honestly.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (add_train_parser, add_embed_parser, add_eval_parser, add_export_and_report_parsers,
                add_cluster_parser, add_prepare_and_listing_parsers):
        add(sub)
    return parser


COMMANDS = {"prepare": cmd_prepare, "train": cmd_train, "embed": cmd_embed, "eval": cmd_eval, "cluster": cmd_cluster, "report": cmd_report, "compare": cmd_compare, "export": cmd_export,
            "methods": cmd_list, "encoders": cmd_list,
            "datasets": cmd_list}


INTERNAL_ERROR = 3  # exit status of an unexpected error (2: the user's input, 130: Ctrl-C, 143: SIGTERM)


def warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
                 line: str | None = None) -> None:
    """`warnings.showwarning` for the command line: one line, `selfsup: warning: ...`, without the file, line and
    source text of the code that warned (they mean nothing to a user)."""
    first = (str(message).strip().splitlines() or [""])[0]
    print(f"selfsup: warning: {first}", file=file or sys.stderr)


def entry() -> int:
    """The `selfsup` command (console script and `python -m selfsup`): `main`, then a faster interpreter exit.
    Shutdown's garbage collections walk every object torch, scikit-learn and SciPy created (about 1 s on a 2-core
    machine): what is garbage is collected here, while the interpreter is whole (reference cycles with finalizers,
    such as DDP's reducers, go before their process group), and the survivors are exempted from shutdown's
    collections (gc.freeze). Modules are still torn down and atexit handlers still run; a cycle that becomes garbage
    only in that teardown is not finalized (selfsup's files are closed or flushed when written)."""
    import gc

    code = main()
    gc.collect()
    gc.freeze()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    with warnings.catch_warnings():  # restores the caller's warning display (tests call main in-process)
        warnings.showwarning = warning_line
        return run_command(argv)


def run_command(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with sigterm_as_interrupt():
        return reported_command(args)


def reported_command(args: argparse.Namespace) -> int:
    """Run the command; a failure is one line on stderr (from torchrun's rank 0 only) and an exit status."""
    try:
        with stoppable():
            import_torch_shielded()
            data_with_table_flags(args)
            return COMMANDS[args.command](args)
    except KeyboardInterrupt as exc:  # at any moment, imports included (the package imports torch lazily)
        if args.debug:
            raise
        stop, failure = interrupted(exc)
        if failure is None:
            say_failure(f"selfsup: {str(stop) or 'interrupted'}")
            return 128 + signal_number(stop)
    except Exception as exc:  # noqa: BLE001 -- the user's input, a bug or an unforeseen failure: one line
        if args.debug:
            raise
        failure = exc
    if isinstance(failure, SelfSupError):
        say_failure(f"selfsup: error: {failure}")
        return 2
    say_failure(failure_line(failure))
    return 2 if outside_failure(failure) else INTERNAL_ERROR


def interrupted(exc: KeyboardInterrupt) -> tuple[KeyboardInterrupt, Exception | None]:
    """(the stop to report, the failure to report instead). A SIGTERM that lands while a torchrun collective's failure
    on a lost peer unwinds (the agent stops the group when a worker dies) reports that failure; a signal that lands
    while a training run stops on an earlier one reports that stop (its checkpoint and --resume command)."""
    context = exc.__context__
    if isinstance(context, KeyboardInterrupt) and str(context):
        return context, None
    if isinstance(exc, Terminated) and isinstance(context, Exception):
        from .training.distributed import lost_peer

        if lost_peer(context):
            return exc, context
    return exc, None


def say_failure(line: str) -> None:
    """Print a failure's line; under torchrun only rank 0 does (the others fail the same way)."""
    if os.environ.get("RANK", "0") == "0":  # torchrun's rank, read without importing torch
        print(line, file=sys.stderr)


def import_torch_shielded() -> None:
    """Import torch with SIGINT and SIGTERM held back, then let a signal that came meanwhile arrive as
    KeyboardInterrupt (Terminated).

    torch's import runs C++ that calls back into Python; a KeyboardInterrupt raised there unwinds through pybind11,
    which calls std::terminate and the process aborts (status -6, a C++ message) instead of printing one line and
    returning 130 (143 for SIGTERM). Blocked, the signal stays pending; unblocking delivers it, Python's handler
    runs at the next bytecode, here inside the caller's try. Every command imports torch, so this costs no command
    anything."""
    if "torch" in sys.modules or os.name != "posix":
        return
    import signal

    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        import torch  # noqa: F401
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def outside_failure(exc: Exception) -> bool:
    """A failure of the user's environment, not of selfsup: an OSError naming a file, a lost torchrun peer."""
    from .training.distributed import lost_peer

    return isinstance(exc, OSError) and bool(exc.filename) or lost_peer(exc)


def failure_line(exc: Exception) -> str:
    """The one line an unexpected exception prints: the file and the system's reason for an OSError that names a
    file (a folder that cannot be written, a full disk, a path that is a file: the user's environment), else an
    internal error to report."""
    from .training.distributed import lost_peer

    if isinstance(exc, OSError) and exc.filename:
        return f"selfsup: error: {exc.filename}: {exc.strerror or exc}"
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    if lost_peer(exc):
        return (f"selfsup: error: another process of the torchrun group stopped ({first}); torchrun "
                "--max-restarts N restarts the group, which resumes from the last checkpoint")
    return (f"selfsup: internal error: {type(exc).__name__}: {first} (rerun with --debug for the traceback; "
            "please report it)")
