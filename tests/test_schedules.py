"""One schedule mechanism for learning rate, weight decay and target momentum (hand-computed values), applied to
the optimiser's groups as declared, and a weight-decay schedule end to end."""
import json
import math

import pytest
from torch import nn

import selfsup
from selfsup.errors import ConfigError
from selfsup.methods import Method, ParameterRoles
from selfsup.methods.base import cosine_momentum
from selfsup.schedules import Schedule
from selfsup.training.optim import apply_schedules, build_optimizer


def test_schedule_values_by_hand():
    lr = Schedule(1.0, 0.0, warmup=0.1)
    assert lr(0.0) == 0.0 and lr(0.05) == pytest.approx(0.5) and lr(0.1) == pytest.approx(1.0)
    assert lr(0.55) == pytest.approx(0.5) and lr(1.0) == pytest.approx(0.0) and lr(2.0) == pytest.approx(0.0)
    wd = Schedule(0.04, 0.4)  # DINO's weight decay
    assert wd(0.0) == pytest.approx(0.04) and wd(0.5) == pytest.approx(0.22) and wd(1.0) == pytest.approx(0.4)
    assert wd(0.25) == pytest.approx(0.4 + (0.04 - 0.4) * (1 + math.cos(math.pi / 4)) / 2)
    assert Schedule(0.99, 0.99)(0.7) == 0.99
    assert cosine_momentum(0.99, 0.5) == pytest.approx(0.995) == Schedule(0.99, 1.0)(0.5)


class TwoHeads(Method):
    def __init__(self, encoder):
        super().__init__(encoder)
        self.fixed = nn.Linear(4, 4)
        self.plain = nn.Linear(4, 4)
        self.target = nn.Linear(4, 4)

    def parameter_roles(self):
        return ParameterRoles(fixed_lr=(self.fixed,), no_weight_decay=(self.plain,))

    def momentum_pairs(self):
        return [(self.plain, self.target)]


def test_groups_follow_the_declared_roles_and_schedules():
    encoder = nn.Linear(3, 4)
    encoder.out_dim = 4
    method = TwoHeads(encoder)
    opt = build_optimizer(method, "adamw", lr=0.1, weight_decay=0.05)
    ids = {id(p): n for n, p in method.named_parameters()}
    groups = {tuple(sorted(ids[id(p)] for p in g["params"])): g for g in opt.param_groups}
    assert not any("target." in n for names in groups for n in names)  # a momentum target is never optimised
    lr = apply_schedules(opt, 0.5, weight_decay=0.3)
    assert lr == pytest.approx(0.05)
    by_name = {n: g for names, g in groups.items() for n in names}
    assert by_name["encoder.weight"]["lr"] == pytest.approx(0.05) and by_name["encoder.weight"]["weight_decay"] == 0.3
    assert by_name["encoder.bias"]["weight_decay"] == 0.0  # biases never decay
    assert by_name["plain.weight"]["weight_decay"] == 0.0  # no_weight_decay
    assert by_name["fixed.weight"]["lr"] == pytest.approx(0.1)  # fixed learning rate, outside the schedule
    assert by_name["fixed.weight"]["weight_decay"] == 0.3


def test_encoder_lr_scale_slows_the_encoder_only():
    encoder = nn.Linear(3, 4)
    encoder.out_dim = 4
    method = TwoHeads(encoder)
    opt = build_optimizer(method, "adamw", lr=0.1, weight_decay=0.05, encoder_lr_scale=0.25)
    apply_schedules(opt, 0.5)
    names = {id(p): n for n, p in method.named_parameters()}
    lr = {names[id(p)]: g["lr"] for g in opt.param_groups for p in g["params"]}
    assert lr["encoder.weight"] == lr["encoder.bias"] == pytest.approx(0.1 * 0.5 * 0.25)
    assert lr["plain.weight"] == pytest.approx(0.05) and lr["fixed.weight"] == pytest.approx(0.1)  # heads: as before
    unscaled = build_optimizer(method, "adamw", lr=0.1, weight_decay=0.05)
    assert len(unscaled.param_groups) < len(opt.param_groups)  # scale 1: the groups (and checkpoints) of before
    with pytest.raises(ConfigError, match="--encoder-lr-scale must be > 0"):
        selfsup.train("digits", epochs=1, encoder_lr_scale=0.0)


def test_weight_decay_schedule_end_to_end(tmp_path):
    selfsup.train("digits", epochs=2, batch_size=128, encoder_options={"widths": [8, 8, 8, 8]},
                  method_options={"proj_hidden_dim": 32}, optimizer="adamw", lr=1e-3, weight_decay=0.04,
                  weight_decay_end=0.4, log_every=1, monitor=False, threads=1, out=tmp_path / "run")
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    wd = [r["weight_decay"] for r in records if "weight_decay" in r]
    steps = [r["step"] for r in records if "weight_decay" in r]
    total = max(steps)
    assert wd == pytest.approx([Schedule(0.04, 0.4)(s / total) for s in steps])
    assert wd[0] < 0.05 and wd[-1] == pytest.approx(0.4)
