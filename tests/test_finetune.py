"""Few-label fine-tuning of the whole encoder (SimCLRv2-style) really updates the encoder and beats chance."""
import numpy as np

import selfsup
from selfsup.evaluate import holdout_test_split
from selfsup.finetune import few_label_finetune


def test_few_label_finetune(digits_run):
    run = selfsup.load(digits_run)
    before = {k: v.clone() for k, v in run.encoder.state_dict().items()}
    train, test, _ = holdout_test_split(selfsup.load_dataset("digits"))
    res = few_label_finetune(run, train, test, fractions=(0.1,), seeds=(0, 1), steps=60)
    for name in ("selfsup", "random_encoder"):
        r = res[name]["0.1"]
        assert len(r["accs"]) == 2 and r["mean"] > 0.3, (name, r)  # chance is 0.1
    # the run's own encoder is left untouched (fine-tuning works on a copy)
    assert all(np.array_equal(before[k].numpy(), v.numpy()) for k, v in run.encoder.state_dict().items())
