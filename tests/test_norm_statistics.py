"""BatchNorm statistics re-estimated on the inputs (run.estimate_norm_statistics): the population moments of every
BatchNorm's input over the given rows, nothing else touched; the trainer applies it when the method (jigsaw,
context prediction: tiles of an enlarged crop) or --norm-statistics says so, records it, and the untrained-encoder
baseline then gets the same; a method that trains on views of its inputs keeps the running averages."""
import copy

import pytest
import torch

import selfsup
from selfsup.config import TrainConfig
from selfsup.evaluate import evaluate_run
from selfsup.errors import ConfigError
from selfsup.methods import methods
from selfsup.run import build_encoder, estimate_norm_statistics, untrained_encoder

WIDTHS = {"widths": [8, 16, 16, 16]}


def norm_buffers(encoder: torch.nn.Module) -> list[torch.Tensor]:
    return [b.clone() for name, b in encoder.named_buffers() if name.endswith(("running_mean", "running_var"))]


@pytest.fixture(scope="module")
def jigsaw_run():
    return selfsup.train("digits", method="jigsaw", epochs=1, batch_size=64, seed=0, monitor=False, threads=1,
                         encoder_options=WIDTHS)


def test_the_statistics_are_the_moments_of_each_norms_input_over_the_rows():
    run_like = selfsup.train("digits", method="simclr", epochs=1, monitor=False, threads=1,
                             encoder_options=WIDTHS)
    enc = build_encoder(run_like.resolved, seed=3)
    x = selfsup.load_dataset("digits").train.x[:300]
    weights = {k: v.clone() for k, v in enc.state_dict().items() if "running" not in k and "num_batches" not in k}
    momenta = [m.momentum for m in enc.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    count = estimate_norm_statistics(enc, run_like.modality, run_like.spec, x, batch_size=64)
    assert count == len(momenta) > 0
    first = next(m for m in enc.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with torch.no_grad():  # by hand: the first convolution's output over all 300 images at once
        conv = next(m for m in enc.modules() if isinstance(m, torch.nn.Conv2d))
        h = conv(run_like.modality.prepare(x, run_like.spec))
    assert torch.allclose(first.running_mean, h.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(first.running_var, h.var(dim=(0, 2, 3), unbiased=True), rtol=1e-4, atol=1e-6)
    assert all(torch.equal(v, enc.state_dict()[k]) for k, v in weights.items())  # weights untouched
    assert [m.momentum for m in enc.modules() if isinstance(m, torch.nn.BatchNorm2d)] == momenta
    assert enc.training  # build_encoder's mode restored


def test_an_encoder_without_batchnorm_is_left_as_it_is():
    run_like = selfsup.train("digits", method="mae", epochs=1, monitor=False, threads=1,
                             encoder_options={"depth": 1})
    enc = build_encoder(run_like.resolved, seed=0)
    before = copy.deepcopy(enc.state_dict())
    x = selfsup.load_dataset("digits").train.x[:64]
    assert estimate_norm_statistics(enc, run_like.modality, run_like.spec, x) == 0
    assert all(torch.equal(v, enc.state_dict()[k]) for k, v in before.items())


def test_tile_methods_end_with_input_statistics_and_say_so(jigsaw_run, tmp_path):
    assert methods.get("jigsaw").norm_statistics == methods.get("relative_position").norm_statistics == "inputs"
    assert methods.get("simclr").norm_statistics == "views"
    assert jigsaw_run.resolved.norm_statistics == "inputs"
    assert jigsaw_run.resolved.to_dict()["norm_statistics"] == "inputs"
    again = copy.deepcopy(jigsaw_run.encoder)
    estimate_norm_statistics(again, jigsaw_run.modality, jigsaw_run.spec, selfsup.load_dataset("digits").train.x,
                             seed=jigsaw_run.config.seed)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(norm_buffers(again), norm_buffers(jigsaw_run.encoder)))
    # the negative control: the same run keeping the running averages over its tiles has other statistics
    views = selfsup.train("digits", method="jigsaw", epochs=1, batch_size=64, seed=0, monitor=False, threads=1,
                          encoder_options=WIDTHS, norm_statistics="views", out=tmp_path / "views")
    assert views.resolved.norm_statistics == "views" and "norm_statistics" not in views.resolved.to_dict()
    far = max(float((a - b).abs().max()) for a, b in zip(norm_buffers(views.encoder), norm_buffers(again)))
    assert far > 0.1, far
    assert selfsup.load(tmp_path / "views").resolved.norm_statistics == "views"


def test_the_untrained_baseline_gets_what_the_run_got(jigsaw_run, monkeypatch):
    from selfsup import evaluate, finetune
    x = selfsup.load_dataset("digits").train.x
    plain = norm_buffers(build_encoder(jigsaw_run.resolved, seed=jigsaw_run.config.seed + 1000))
    treated = norm_buffers(untrained_encoder(jigsaw_run, x))
    assert all(torch.equal(b, torch.zeros_like(b)) for b in plain[::2])  # a fresh BatchNorm: mean 0
    assert any(float(b.abs().max()) > 0.01 for b in treated[::2])
    asked = []  # the evaluation's and fine-tuning's baselines are built by untrained_encoder, for this run
    for module in (evaluate, finetune):
        real = module.untrained_encoder
        monkeypatch.setattr(module, "untrained_encoder",
                            lambda run, inputs, real=real: asked.append(run) or real(run, inputs))
    ev = evaluate_run(jigsaw_run, protocols=("knn",))
    assert ev["baselines"]["random_encoder"]["knn"] > 0.5  # chance is 0.1
    ds = selfsup.load_dataset("digits")
    finetune.few_label_finetune(jigsaw_run, ds.train, ds.test, fractions=(0.01,), seeds=(0,), min_steps=1, max_steps=1)
    assert asked == [jigsaw_run, jigsaw_run]


def test_the_option_is_checked_and_saved(tmp_path):
    with pytest.raises(ConfigError, match="norm.statistics"):
        TrainConfig(data="digits", norm_statistics="batch").validate()
    run = selfsup.train("digits", method="simclr", epochs=1, monitor=False, threads=1,
                        encoder_options=WIDTHS, norm_statistics="inputs", out=tmp_path / "run")
    loaded = selfsup.load(tmp_path / "run")
    assert loaded.resolved.norm_statistics == "inputs"
    assert all(torch.equal(a, b) for a, b in zip(norm_buffers(loaded.encoder), norm_buffers(run.encoder)))
