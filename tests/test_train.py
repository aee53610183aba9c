"""Training loop: determinism, dev hold-out, mid-epoch evaluation, resume equivalence, locks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bmes_tagger.config import load_config
from bmes_tagger.errors import BmesTaggerError, RunDirError
from bmes_tagger.predict import Tagger
from bmes_tagger.rundir import RunLock
from bmes_tagger.train import train
from conftest import DATA, tiny_config


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_same_seed_same_result(tmp_path: Path) -> None:
    cfg = load_config(tiny_config(tmp_path))
    a = train(cfg, tmp_path / "a", progress=False)
    b = train(cfg, tmp_path / "b", progress=False)
    dev_a, dev_b = metrics(tmp_path / "a"), metrics(tmp_path / "b")
    assert [m["dev"] for m in dev_a] == [m["dev"] for m in dev_b]
    assert a.best_scores == b.best_scores
    other = train(load_config(tiny_config(tmp_path), ["train.seed=4"]), tmp_path / "c",
                  progress=False)
    assert [m["train_loss"] for m in metrics(tmp_path / "c")] != \
        [m["train_loss"] for m in metrics(tmp_path / "a")]
    del other


def test_resume_continues_exactly(tmp_path: Path) -> None:
    path = tiny_config(tmp_path)
    straight = train(load_config(path, ["train.epochs=3"]), tmp_path / "straight",
                     progress=False)
    train(load_config(path, ["train.epochs=1"]), tmp_path / "split", progress=False)
    resumed = train(load_config(path, ["train.epochs=3"]), tmp_path / "split", resume=True,
                    progress=False)
    a, b = metrics(tmp_path / "straight"), metrics(tmp_path / "split")
    assert [m["epoch"] for m in b] == [1, 2, 3]
    for x, y in zip(a, b):
        assert x["dev"]["f1"] == pytest.approx(y["dev"]["f1"], abs=1e-6)
        assert x["train_loss"] == pytest.approx(y["train_loss"], abs=1e-6)
    assert straight.best_scores["f1"] == pytest.approx(resumed.best_scores["f1"], abs=1e-6)


def test_dev_fraction_and_eval_every(tmp_path: Path) -> None:
    cfg = load_config(tiny_config(tmp_path), ["data.dev=null", "data.dev_fraction=0.2",
                                              "train.eval_every=10", "train.epochs=1"])
    result = train(cfg, tmp_path / "run", progress=False)
    records = metrics(tmp_path / "run")
    # 400 training sentences (a few cut at max_len 40) in batches of 16: 20 < steps < 30, so
    # evaluations at steps 10, 20 and once more at the end of the run
    assert 20 < result.steps < 30
    assert [r["step"] for r in records] == [10, 20, result.steps]
    log = (tmp_path / "run" / "train.log").read_text()
    assert "train: 400 sentences" in log and "dev: 100 sentences" in log


def test_patience_stops_early(tmp_path: Path) -> None:
    cfg = load_config(tiny_config(tmp_path), ["train.lr=0.000001", "train.patience=1",
                                              "train.epochs=6"])
    result = train(cfg, tmp_path / "run", progress=False)
    assert result.stopped_early and result.epochs_run < 6
    # resumed, it stays stopped (it used to train on, an epoch at a time); a larger
    # patience lets it go on
    again = train(cfg, tmp_path / "run", resume=True, progress=False)
    assert again.stopped_early and (again.epochs_run, again.steps) == \
        (result.epochs_run, result.steps)
    assert len(metrics(tmp_path / "run")) == result.epochs_run
    longer = train(load_config(tiny_config(tmp_path), ["train.lr=0.000001", "train.patience=0",
                                                       "train.epochs=6"]),
                   tmp_path / "run", resume=True, progress=False)
    assert not longer.stopped_early and longer.epochs_run == 6


def test_lock_refuses_live_owner_and_takes_over_stale(tmp_path: Path) -> None:
    import fcntl

    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text("12345")
    with open(run / ".lock") as held:  # a live owner: someone holds the flock
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(RunDirError, match=r"another tagger train \(PID 12345\)"):
            train(load_config(tiny_config(tmp_path)), run, progress=False)
    assert not (run / "config.yaml").exists()  # refused before touching anything
    (run / ".lock").write_text("999999999")  # left by a dead process: nobody holds it
    with RunLock(run):
        assert (run / ".lock").read_text() == str(os.getpid())
    assert not (run / ".lock").exists()


def test_two_locks_started_together_are_never_both_held(tmp_path: Path) -> None:
    """The lock is taken atomically (flock), and released only by its owner."""
    import threading
    import time

    run = tmp_path / "run"
    run.mkdir()
    holders = 0
    most = 0
    count = threading.Lock()

    def contend(start: threading.Barrier) -> None:
        nonlocal holders, most
        start.wait()
        try:
            with RunLock(run):
                with count:
                    holders += 1
                    most = max(most, holders)
                time.sleep(0.002)
                with count:
                    holders -= 1
        except RunDirError:
            pass

    for _ in range(100):
        start = threading.Barrier(2)
        threads = [threading.Thread(target=contend, args=(start,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not (run / ".lock").exists()
    assert most == 1


def test_resume_sweeps_temporaries_of_a_killed_save(tmp_path: Path) -> None:
    path, run = tiny_config(tmp_path), tmp_path / "run"
    train(load_config(path, ["train.epochs=1"]), run, progress=False)
    # What a SIGKILL during save_checkpoint leaves: a partial temporary and a stale lock.
    torn = run / ".last.pt.k1l3d.tmp"
    torn.write_bytes(b"PK\x03\x04 half a zip")
    (run / ".lock").write_text("999999999")  # nobody holds its flock: stale
    mine = run / ".notes.tmp"  # not one of ours: must survive
    mine.write_text("user file")
    train(load_config(path, ["train.epochs=2"]), run, resume=True, progress=False)
    assert not torn.exists() and mine.read_text() == "user file"
    assert [m["epoch"] for m in metrics(run)] == [1, 2]


def test_long_lines_are_split_and_rejoined(tmp_path: Path) -> None:
    cfg = load_config(tiny_config(tmp_path), ["train.epochs=1"])  # max_len 40
    train(cfg, tmp_path / "run", progress=False)
    tagger = Tagger.load(tmp_path / "run" / "best.pt")
    text = "我们在北京工作，" * 60 + "没有标点的很长的一句话" * 20
    (words,) = tagger.segment([text])
    assert "".join(words) == text
    ((tags),) = tagger.tag_tokens([list(text)])
    assert len(tags) == len(text)


FEATURES = ["model.bigram_dim=8", "model.bigram_context=both", "model.class_dim=4",
            "model.locked_dropout=true", "model.head=crf", "train.lr_schedule=linear",
            "train.warmup_steps=5", "train.ema_decay=0.99", "data.min_bigram_freq=1"]


def test_all_features_train_deterministically_and_round_trip(tmp_path: Path) -> None:
    cfg = load_config(tiny_config(tmp_path), [*FEATURES, "train.epochs=3"])
    result = train(cfg, tmp_path / "a", progress=False)
    train(cfg, tmp_path / "b", progress=False)
    dev_a, dev_b = metrics(tmp_path / "a"), metrics(tmp_path / "b")
    assert [m["dev"] for m in dev_a] == [m["dev"] for m in dev_b]
    assert result.best_scores["f1"] > 0.5
    tagger = Tagger.load(tmp_path / "a" / "best.pt")
    assert "bigrams" in tagger.vocabs and tagger.network.has_crf
    texts = ["我们在北京工作。", "ＡＢＣ公司发布了新产品", "x"]
    assert Tagger.load(tmp_path / "b" / "best.pt").segment(texts) == tagger.segment(texts)
    assert "".join(tagger.segment(texts)[1]) == texts[1]


def straight_and_split(tmp_path: Path, sets: list[str], epochs: int, split_after: int
                       ) -> tuple[list[dict], list[dict]]:
    """Metrics of a run trained straight to ``epochs`` (in tmp_path/straight) and of the same
    run stopped after ``split_after`` epochs and resumed to ``epochs`` (tmp_path/split)."""
    path = tiny_config(tmp_path)
    train(load_config(path, [*sets, f"train.epochs={epochs}"]), tmp_path / "straight",
          progress=False)
    train(load_config(path, [*sets, f"train.epochs={split_after}"]), tmp_path / "split",
          progress=False)
    train(load_config(path, [*sets, f"train.epochs={epochs}"]), tmp_path / "split",
          resume=True, progress=False)
    return metrics(tmp_path / "straight"), metrics(tmp_path / "split")


def test_plateau_schedule_and_ema_resume_exactly(tmp_path: Path) -> None:
    a, b = straight_and_split(tmp_path, ["model.bigram_dim=8", "train.lr_schedule=plateau",
                                         "train.ema_decay=0.9"], epochs=3, split_after=1)
    assert len(a) == len(b) == 3
    for x, y in zip(a, b):
        assert x["dev"]["f1"] == pytest.approx(y["dev"]["f1"], abs=1e-6)
        assert x["train_loss"] == pytest.approx(y["train_loss"], abs=1e-6)


@pytest.mark.parametrize("task", ["cws", "ner"])
@pytest.mark.parametrize("head", ["softmax", "crf"])
@pytest.mark.parametrize("average", ["train.ema_decay=0.0", "train.ema_decay=0.9",
                                     "train.average_last=3"], ids=["raw", "ema", "last3"])
def test_logged_dev_f1_is_what_eval_of_best_pt_measures(tmp_path: Path, task: str, head: str,
                                                        average: str) -> None:
    """Oracle across the train/eval boundary: the best dev F1 that training logged (and used
    to pick best.pt) is what `tagger eval` of that best.pt on the dev file reports (the
    weights as trained, their EMA, or the mean of the last 3 epoch ends)."""
    from typer.testing import CliRunner

    from bmes_tagger.cli import app

    cfg = load_config(tiny_config(tmp_path, task, head),
                      [average, "train.epochs=3", "model.dropout=0.5",
                       "model.embedding_dropout=0.5"])
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    logged = max(r["dev"]["f1"] for r in metrics(run))
    out = CliRunner().invoke(app, ["eval", "--model", str(run / "best.pt"), "--data",
                                   str(cfg.data.dev), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["f1"] == pytest.approx(logged, abs=1e-9)


def _weights(path: Path) -> dict:
    import torch

    return torch.load(path, weights_only=True)["model"]


def test_average_last_ships_the_mean_of_the_last_epoch_ends(tmp_path: Path) -> None:
    """best.pt of train.average_last=2 is the mean of the weights two plain runs end their
    epochs with (computed here, independently), and training itself never saw the mean:
    the run ends with the plain run's weights."""
    import torch

    path = tiny_config(tmp_path)
    plain = []  # the weights at the end of epochs 1, 2, 3 (a run of each length)
    for epochs in (1, 2, 3):
        train(load_config(path, [f"train.epochs={epochs}", "train.patience=0"]),
              tmp_path / f"plain{epochs}", progress=False)
        plain.append(_weights(tmp_path / f"plain{epochs}" / "last.pt"))
    run = tmp_path / "avg"
    result = train(load_config(path, ["train.epochs=3", "train.patience=0",
                                      "train.average_last=2"]), run, progress=False)
    last = torch.load(run / "last.pt", weights_only=True)
    for key, value in plain[2].items():
        assert torch.equal(last["model"][key], value), key
    snapshots = last["training"]["average"]["snapshots"]
    assert len(snapshots) == 2
    for snapshot, weights in zip(snapshots, plain[1:]):
        assert snapshot.keys() == weights.keys()
        assert all(torch.equal(snapshot[k], weights[k]) for k in weights)
    epoch = result.best_epoch
    assert epoch >= 2  # (so that best.pt is a mean of two)
    best = _weights(run / "best.pt")
    assert best.keys() == plain[0].keys()
    for key in best:
        mean = torch.stack([w[key] for w in plain[epoch - 2:epoch]]).double().mean(0).float()
        torch.testing.assert_close(best[key], mean, rtol=0, atol=1e-7)
    assert not all(torch.equal(best[k], plain[epoch - 1][k]) for k in best)
    assert "mean of the weights at the last 2 epoch ends" in (run / "train.log").read_text()


def test_average_last_resumes_bit_identically(tmp_path: Path) -> None:
    """The snapshots travel in last.pt: split after epoch 2 and resumed, the run logs the
    same figures and writes the same best.pt and last.pt, bit for bit."""
    a, b = straight_and_split(tmp_path, ["train.average_last=2", "train.patience=0",
                                         "model.bigram_dim=8"], epochs=3, split_after=2)
    assert [m["epoch"] for m in b] == [1, 2, 3]
    assert [(m["dev"], m["train_loss"], m["best"]) for m in a] == \
        [(m["dev"], m["train_loss"], m["best"]) for m in b]
    import torch

    for name in ("best.pt", "last.pt"):
        x, y = _weights(tmp_path / "straight" / name), _weights(tmp_path / "split" / name)
        assert all(torch.equal(x[k], y[k]) for k in x), name


def test_a_last_pt_whose_snapshots_do_not_fit_is_refused_on_resume(tmp_path: Path) -> None:
    import torch

    path, run = tiny_config(tmp_path), tmp_path / "run"
    sets = ["train.average_last=2", "train.epochs=1"]
    train(load_config(path, sets), run, progress=False)
    state = torch.load(run / "last.pt", weights_only=True)
    (snapshot,) = state["training"]["average"]["snapshots"]
    key = next(iter(snapshot))
    snapshot[key] = snapshot[key][:1]
    torch.save(state, run / "last.pt")
    with pytest.raises(RunDirError, match="last.pt: its optimizer, schedule or average does "
                                          "not fit this model"):
        train(load_config(path, ["train.average_last=2", "train.epochs=2"]), run,
              resume=True, progress=False)


def _vectors(tmp_path: Path, chars: str, dim: int = 16) -> Path:
    """word2vec text vectors for some characters (1.0, 2.0, ... per row)."""
    path = tmp_path / "vectors.txt"
    path.write_text("".join(f"{c} " + " ".join([f"{i + 1}.0"] * dim) + "\n"
                            for i, c in enumerate(chars)), encoding="utf-8")
    return path


def test_frozen_vectors_keep_their_rows_only_and_resume(tmp_path: Path) -> None:
    """model.freeze_vectors keeps the rows that got a pretrained vector fixed (also under
    weight decay) through a resumed run (resuming used to crash with a frozen table)."""
    import torch

    chars = "我们的在是了"
    vectors = _vectors(tmp_path, chars)
    path = tiny_config(tmp_path)
    sets = [f"model.char_vectors={vectors}", "model.freeze_vectors=true",
            "train.weight_decay=0.01"]
    train(load_config(path, [*sets, "train.epochs=1"]), tmp_path / "run", progress=False)
    train(load_config(path, [*sets, "train.epochs=2"]), tmp_path / "run", resume=True,
          progress=False)
    first = Tagger.load(tmp_path / "run" / "best.pt")
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    vocab = first.vocabs["chars"]
    weight = last["model"]["embedding.tables.chars.weight"]
    for i, c in enumerate(chars):
        assert torch.equal(weight[vocab.index[c]], torch.full((16,), float(i + 1))), c
    assert [m["epoch"] for m in metrics(tmp_path / "run")] == [1, 2]


def test_extend_vocab_reads_unseen_tokens_through_their_fixed_vectors(tmp_path: Path) -> None:
    """model.extend_vocab: characters, bigrams and lexicon words that only the vectors know
    get rows after the training vocabulary, holding their vectors unchanged after training
    (weight decay on); text with them is encoded to those rows in the shipped model."""
    import numpy as np
    import torch

    from bmes_tagger import features

    def vec(name: str, tokens: list[str], dim: int) -> Path:
        path = tmp_path / name
        path.write_text(f"{len(tokens)} {dim}\n" + "".join(
            f"{t} " + " ".join([f"{i + 1}.5"] * dim) + "\n" for i, t in enumerate(tokens)),
            encoding="utf-8")
        return path

    unseen_chars = ["龘", "靐"]  # in no sample text
    chars = vec("c.vec", ["的", *unseen_chars], 16)
    bigrams = vec("b.vec", ["龘\x1f靐", "的\x1f龘"], 8)
    lexicon = tmp_path / "words.txt"
    lexicon.write_text("龘靐 3\n学生 5\n", encoding="utf-8")
    words = vec("w.vec", ["龘靐", "不在词表"], 8)
    sets = [f"model.char_vectors={chars}", f"model.bigram_vectors={bigrams}",
            "model.bigram_dim=8", f"model.lexicon={lexicon}", "model.lexicon_dim=8",
            f"model.word_vectors={words}", "model.extend_vocab=true",
            "train.weight_decay=0.1", "train.ema_decay=0.9"]
    assert features.SEP == "\x1f"
    train(load_config(tiny_config(tmp_path), [*sets, "train.epochs=1"]), tmp_path / "run",
          progress=False)
    # resumed: the optimizer and the weight average hold the trained rows only
    train(load_config(tiny_config(tmp_path), [*sets, "train.epochs=2"]), tmp_path / "run",
          resume=True, progress=False)
    log = (tmp_path / "run" / "train.log").read_text("utf-8")
    assert "chars: 2 tokens of the pretrained vectors added" in log
    assert "bigrams: 2 tokens" in log and "lexicon: 1 tokens" in log
    tagger = Tagger.load(tmp_path / "run" / "best.pt")
    weights = torch.load(tmp_path / "run" / "best.pt", weights_only=True)["model"]

    def table_of(name: str) -> torch.Tensor:
        # the trained rows, then the fixed tail the network holds apart
        return torch.cat([weights[f"embedding.tables.{name}.weight"],
                          weights[f"embedding.tables.{name}.tail"]])

    char_vocab = tagger.vocabs["chars"]
    assert char_vocab.fixed == 2 and len(table_of("chars")) == len(char_vocab)
    # the added rows come last, in file order, with their vectors as they were
    assert char_vocab.tokens[-2:] == unseen_chars
    for token, value in (("龘", 2.5), ("靐", 3.5)):
        row = table_of("chars")[char_vocab.index[token]]
        assert torch.equal(row, torch.full((16,), value))
    assert tagger.vocabs["bigrams"].tokens[-2:] == ["龘\x1f靐", "的\x1f龘"]
    table = tagger.vocabs["lexicon"].table
    assert table.tokens[-1] == "龘靐" and "不在词表" not in table  # lexicon words only
    row = table_of("lexicon")[table.index["龘靐"]]
    assert torch.equal(row, torch.full((8,), 1.5))
    columns, _ = features.encode([list("的龘靐")], tagger.vocabs, tagger.config)
    assert columns["chars"][1:, 0].tolist() == [char_vocab.index[c] for c in unseen_chars]
    assert columns["bigrams"][1, 0] == tagger.vocabs["bigrams"].index["龘\x1f靐"]
    assert table.index["龘靐"] in np.asarray(columns["lexicon"]).tolist()[1]
    assert tagger.segment(["的龘靐"])[0]  # and the shipped model predicts with them


def test_extend_vocab_needs_vectors(tmp_path: Path) -> None:
    cfg = load_config(tiny_config(tmp_path), ["model.extend_vocab=true"])
    with pytest.raises(BmesTaggerError, match="extend_vocab.*needs pretrained vectors"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_frozen_rows_are_exactly_those_that_got_vectors(tmp_path: Path) -> None:
    import torch

    from bmes_tagger.model import build_model
    from bmes_tagger.train import FrozenRows, init_pretrained, make_optimizer
    from bmes_tagger.vocab import Vocab

    cfg = load_config(tiny_config(tmp_path), [
        f"model.char_vectors={_vectors(tmp_path, '我们', 16)}", "model.freeze_vectors=true",
        "train.weight_decay=0.1"])
    vocabs = {"chars": Vocab(["<pad>", "<unk>", "我", "他", "们"])}
    model = build_model(cfg, vocabs, ["B", "M", "E", "S"])
    ((name, rows, _),) = init_pretrained(model, cfg, vocabs)
    assert name == "chars" and rows.tolist() == [2, 4]
    frozen = FrozenRows(model, {name: rows})
    optimizer = make_optimizer(model, cfg)
    optimizer.register_step_post_hook(lambda *_: frozen.restore())
    table = model.embedding.tables["chars"].weight
    before = table.detach().clone()
    ids = torch.tensor([[[2], [3], [4], [1]]])
    model.train()
    for _ in range(3):
        loss = model({"chars": ids}, torch.tensor([4]), torch.tensor([[0, 2, 0, 2]]),
                     torch.ones(1, 4, dtype=torch.bool))
        optimizer.zero_grad()
        loss.backward()
        assert table.grad[[2, 4]].abs().sum() == 0 and table.grad[3].abs().sum() > 0
        optimizer.step()
    assert torch.equal(table[[2, 4]], before[[2, 4]])
    assert not torch.equal(table[3], before[3]) and not torch.equal(table[1], before[1])


def test_device_option_and_a_device_this_machine_lacks(tmp_path: Path) -> None:
    import torch
    from typer.testing import CliRunner

    from bmes_tagger.cli import app

    runner = CliRunner()
    path = tiny_config(tmp_path)
    result = runner.invoke(app, ["train", str(path), "--quiet", "--device", "cpu",
                                 "--set", "train.epochs=1", "--threads", "1"])
    assert result.exit_code == 0, result.stderr
    assert "on cpu" in (tmp_path / "run" / "train.log").read_text()
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert "cuda_rng" in last["training"]
    model = str(tmp_path / "run" / "best.pt")
    raw = str(DATA / "sample-cws" / "raw.txt")
    cpu = runner.invoke(app, ["predict", raw, "--model", model, "--device", "cpu"])
    auto = runner.invoke(app, ["predict", raw, "--model", model])
    assert cpu.exit_code == auto.exit_code == 0 and cpu.stdout == auto.stdout
    if not torch.cuda.is_available():
        for argv in (["predict", raw, "--model", model, "--device", "cuda"],
                     ["train", str(path), "--device", "cuda:0", "--output",
                      str(tmp_path / "gpu")]):
            refused = runner.invoke(app, argv)
            assert refused.exit_code == 1 and "CUDA is not available" in refused.stderr
        bad = runner.invoke(app, ["predict", raw, "--model", model, "--device", "tpu"])
        assert bad.exit_code == 2 and "expected auto, cpu, cuda or cuda:N" in bad.stderr  # usage


@pytest.mark.cuda
def test_cuda_smoke_trains_and_predicts_like_cpu(tmp_path: Path) -> None:
    """On a machine with CUDA: a run on the GPU, and its checkpoint predicting the same words
    on the CPU as on the GPU."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    cfg = load_config(tiny_config(tmp_path), ["train.device=cuda", "train.epochs=2"])
    result = train(cfg, tmp_path / "run", progress=False)
    assert result.best_scores["f1"] > 0.5
    texts = ["我们在北京工作。", "今天天气很好"]
    gpu = Tagger.load(tmp_path / "run" / "best.pt", device="cuda")
    cpu = Tagger.load(tmp_path / "run" / "best.pt", device="cpu")
    assert gpu.segment(texts) == cpu.segment(texts)


def test_a_run_killed_before_its_first_evaluation_is_simply_started_again(tmp_path: Path
                                                                          ) -> None:
    """A folder with only a config and a log is not a run: a plain start takes it, and
    --resume says to start without it (they used to send the user to each other)."""
    from bmes_tagger.rundir import MARKER

    run = tmp_path / "run"
    run.mkdir()
    (run / MARKER).write_text("a run started here\n")  # as every run writes first
    (run / "config.yaml").write_text("# resolved config of a killed run\n")
    (run / "train.log").write_text("2026-12-01 train: 400 sentences\n")
    # an evaluation was logged, but its checkpoint could not be written (disk full)
    (run / "metrics.jsonl").write_text('{"epoch": 1, "step": 25}\n')
    cfg = load_config(tiny_config(tmp_path), ["train.epochs=1"])
    with pytest.raises(RunDirError, match="never reached its first evaluation.*without --resume"):
        train(cfg, run, resume=True, progress=False)
    train(cfg, run, progress=False)
    assert (run / "best.pt").exists() and len(metrics(run)) == 1
    assert metrics(run)[0]["dev"]  # the stale record is gone


def test_a_failed_start_leaves_no_run_directory(tmp_path: Path) -> None:
    bad = tmp_path / "vectors.txt"
    bad.write_text("我 1 2\n", encoding="utf-8")  # 2 values for a 16-wide embedding
    cfg = load_config(tiny_config(tmp_path), [f"model.char_vectors={bad}"])
    with pytest.raises(Exception, match="expected 16 values"):
        train(cfg, tmp_path / "new" / "run", progress=False)
    assert not (tmp_path / "new" / "run").exists()


def test_tensorboard_scalars_are_the_metrics_records(tmp_path: Path) -> None:
    """train.tensorboard writes, per evaluation, what metrics.jsonl records (read back with
    tensorboard's own reader); --resume purges what came after last.pt."""
    pytest.importorskip("tensorboard", reason="needs the tensorboard extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = tiny_config(tmp_path)
    train(load_config(path, ["train.tensorboard=true", "train.epochs=2"]), tmp_path / "run",
          progress=False)
    train(load_config(path, ["train.tensorboard=true", "train.epochs=3"]), tmp_path / "run",
          resume=True, progress=False)
    board = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    board.Reload()
    records = metrics(tmp_path / "run")
    assert len(records) == 3
    f1 = [(e.step, e.value) for e in board.Scalars("dev/f1")]
    assert [s for s, _ in f1] == [r["step"] for r in records]
    for (_, value), r in zip(f1, records):
        assert value == pytest.approx(r["dev"]["f1"], abs=1e-6)
    lr = board.Scalars("train/lr")
    assert [e.value for e in lr] == pytest.approx([r["lr"] for r in records])


def test_bf16_training_runs_the_network_in_bfloat16_and_the_loss_head_in_float32(
        tmp_path: Path) -> None:
    """train.precision=bf16: the encoder really computes in bfloat16 (else the option does
    nothing), the CRF gets float32 scores, weights and gradients stay float32, and the loss
    is the float32 loss to bfloat16's accuracy."""
    import torch

    from bmes_tagger.model import build_model
    from bmes_tagger.train import make_optimizer, train_step
    from bmes_tagger.vocab import Vocab

    cfg = load_config(tiny_config(tmp_path, "cws", "crf"), ["model.dropout=0",
                                                           "model.embedding_dropout=0"])
    vocabs = {"chars": Vocab(["<pad>", "<unk>", *"我们他好"])}
    seen: dict[str, torch.dtype] = {}
    losses = {}
    for bf16 in (False, True):
        torch.manual_seed(3)
        model = build_model(cfg, vocabs, ["B", "M", "E", "S"])
        model.encoder.register_forward_hook(lambda m, i, o: seen.__setitem__("encoder", o.dtype))
        crf_forward = model.crf.forward

        def spy(scores, *args, crf_forward=crf_forward, **kwargs):  # type: ignore
            seen["crf"] = scores.dtype
            return crf_forward(scores, *args, **kwargs)

        model.crf.forward = spy  # type: ignore[method-assign]
        optimizer = make_optimizer(model, cfg)
        from bmes_tagger.batching import Batch

        batch = Batch(inputs={"chars": torch.tensor([[[2], [3], [4], [5]], [[5], [2], [0], [0]]])},
                      lengths=torch.tensor([4, 2]), tags=torch.tensor([[0, 2, 0, 2], [3, 3, 0, 0]]),
                      mask=torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool))
        losses[bf16] = float(train_step(model, optimizer, batch, 5.0, bf16=bf16))
        assert seen == {"encoder": torch.bfloat16 if bf16 else torch.float32,
                        "crf": torch.float32}
        assert all(p.dtype == torch.float32 for p in model.parameters())
        assert all(p.grad is None or p.grad.dtype == torch.float32 for p in model.parameters())
    assert losses[True] == pytest.approx(losses[False], rel=2e-2)


def test_bf16_training_logs_what_eval_measures_and_resumes_exactly(tmp_path: Path) -> None:
    """bf16 training, oracle across the train/eval boundary (dev evaluation is float32, as
    `tagger eval` is), and an interrupted bf16 run resumes to the same numbers."""
    from typer.testing import CliRunner

    from bmes_tagger.cli import app

    path = tiny_config(tmp_path, "ner", "crf")
    straight = tmp_path / "straight"
    train(load_config(path, ["train.precision=bf16", "train.epochs=3"]), straight,
          progress=False)
    logged = max(r["dev"]["f1"] for r in metrics(straight))
    cfg = load_config(path)
    out = CliRunner().invoke(app, ["eval", "--model", str(straight / "best.pt"), "--data",
                                   str(cfg.data.dev), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["f1"] == pytest.approx(logged, abs=1e-9)
    split = tmp_path / "split"
    train(load_config(path, ["train.precision=bf16", "train.epochs=1"]), split, progress=False)
    train(load_config(path, ["train.precision=bf16", "train.epochs=3"]), split, resume=True,
          progress=False)
    for x, y in zip(metrics(straight), metrics(split), strict=True):
        assert x["train_loss"] == pytest.approx(y["train_loss"], abs=1e-6)
        assert x["dev"]["f1"] == pytest.approx(y["dev"]["f1"], abs=1e-6)
    fp32 = tmp_path / "fp32"
    train(load_config(path, ["train.epochs=1"]), fp32, progress=False)
    assert metrics(fp32)[0]["train_loss"] != metrics(straight)[0]["train_loss"]


def test_the_optimizer_is_fused_and_updates_as_the_per_parameter_loop_does(
        tmp_path: Path) -> None:
    import inspect

    import torch

    from bmes_tagger.model import build_model
    from bmes_tagger.train import make_optimizer
    from bmes_tagger.vocab import Vocab

    vocabs = {"chars": Vocab(["<pad>", "<unk>", *"我们他好"])}
    for optimizer_name in ("adam", "adamw", "sgd"):
        cfg = load_config(tiny_config(tmp_path), [f"train.optimizer={optimizer_name}",
                                                  "train.weight_decay=0.01"])
        torch.manual_seed(0)
        model = build_model(cfg, vocabs, ["B", "M", "E", "S"])
        twin = build_model(cfg, vocabs, ["B", "M", "E", "S"])
        twin.load_state_dict(model.state_dict())
        fused = make_optimizer(model, cfg)
        assert fused.defaults["fused"] is True
        accepted = inspect.signature(type(fused)).parameters
        loop = type(fused)(twin.parameters(), **{
            **{k: v for k, v in fused.defaults.items() if k in accepted},
            "fused": None, "foreach": False})
        for step in range(3):
            for m, opt in ((model, fused), (twin, loop)):
                torch.manual_seed(step)
                for p in m.parameters():
                    p.grad = torch.randn_like(p)
                opt.step()
        for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
            assert torch.allclose(a, b, atol=1e-6), (optimizer_name, name)


def test_resume_says_what_it_changes_refuses_another_seed_and_updates_config_yaml(
        tmp_path: Path) -> None:
    """An outside tester: a resume with another train.seed was silently another run, and
    config.yaml kept the first start's settings."""
    import yaml

    from bmes_tagger.errors import ConfigError

    path = tiny_config(tmp_path)
    run = tmp_path / "run"
    train(load_config(path, ["train.epochs=1"]), run, progress=False)
    with pytest.raises(ConfigError, match=r"train\.seed 4 differs .*\(seed 3\)"):
        train(load_config(path, ["train.epochs=2", "train.seed=4"]), run, resume=True,
              progress=False)
    train(load_config(path, ["train.epochs=2", "train.precision=bf16"]), run, resume=True,
          progress=False)
    log = (run / "train.log").read_text(encoding="utf-8")
    assert "--resume: train.epochs 1 -> 2, train.precision 'fp32' -> 'bf16'" in log
    saved = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    assert saved["train"]["epochs"] == 2 and saved["train"]["precision"] == "bf16"
    train(load_config(path, ["train.epochs=1", "train.precision=bf16"]), run, resume=True,
          progress=False)
    assert "has done 2 of train.epochs 1: nothing more to train" in \
        (run / "train.log").read_text(encoding="utf-8")


def test_a_last_pt_that_lost_its_averaging_snapshots_is_refused(tmp_path: Path) -> None:
    """An outside tester: deleting them resumed a K=3 run without its average, silently."""
    import torch

    path = tiny_config(tmp_path)
    run = tmp_path / "run"
    train(load_config(path, ["train.epochs=2", "train.average_last=3"]), run, progress=False)
    payload = torch.load(run / "last.pt", weights_only=True)
    payload["training"]["average"] = {"snapshots": []}
    torch.save(payload, run / "last.pt")
    with pytest.raises(RunDirError, match="averages its last 3 epochs .* no snapshots"):
        train(load_config(path, ["train.epochs=3", "train.average_last=3"]), run,
              resume=True, progress=False)
