"""benchmarks/ncrfpp.py: driving NCRF++ from outside (here a stand-in printing its lines)."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import load_benchmark

# Prints what NCRF++'s main.py prints (the lines the wrapper reads), burning CPU per epoch.
FAKE_MAIN = textwrap.dedent("""\
    import re, sys, time
    cfg = open(sys.argv[2]).read()
    iters = int(re.search(r"(?m)^iteration=(\\d+)$", cfg).group(1))
    batch = int(re.search(r"(?m)^batch_size=(\\d+)$", cfg).group(1))
    assert open(re.search(r"(?m)^train_dir=(.*)$", cfg).group(1)).read()
    print("     MAX SENTENCE LENGTH: 4")
    print("     BatchSize: %d" % batch)
    for idx in range(iters):
        start = time.time()
        print("Epoch: %s/%s" % (idx, iters))
        t = time.process_time()
        while time.process_time() - t < 0.3:
            pass
        cost = time.time() - start
        print("Epoch: %s training finished. Time: %.2fs, speed: %.2fst/s,  total loss: 1.0"
              % (idx, cost, 2 / cost))
        print("Dev: time: 0.10s, speed: 10.00st/s; acc: 0.9000, p: 0.5000, r: 0.5000, "
              "f: 0.5000")
        print("Test: time: 0.20s, speed: 20.00st/s; acc: 0.9000, p: 0.6000, r: 0.6000, "
              "f: 0.6%d00" % idx)
    if "FAIL" in cfg:
        sys.exit(3)
""")

TEMPLATE = textwrap.dedent("""\
    train_dir=${CORPORA}/resume_ner/train.char.bmes
    dev_dir=${CORPORA}/resume_ner/dev.char.bmes
    test_dir=${CORPORA}/resume_ner/test.char.bmes
    model_dir=MODELDIR
    iteration=ITER
    batch_size=10
""")


def load():  # type: ignore[no-untyped-def]
    return load_benchmark("ncrfpp")


def fake_setup(tmp_path: Path, template: str = TEMPLATE) -> tuple[Path, Path]:
    peers = tmp_path / "peers"
    (peers / "NCRFpp").mkdir(parents=True)
    (peers / "NCRFpp" / "main.py").write_text(FAKE_MAIN, encoding="utf-8")
    (peers / "ncrfpp-resume.config.tmpl").write_text(template, encoding="utf-8")
    corpora = tmp_path / "corpora"
    (corpora / "resume_ner").mkdir(parents=True)
    # train: sentences of 2 and 3 chars kept, one of 5 chars dropped (max length 4)
    (corpora / "resume_ner" / "train.char.bmes").write_text(
        "a O\nb O\n\nc O\nd O\ne O\n\nf O\ng O\nh O\ni O\nj O\n", encoding="utf-8")
    for name in ("dev", "test"):
        (corpora / "resume_ner" / f"{name}.char.bmes").write_text("a O\n\n", encoding="utf-8")
    return peers, corpora


def test_epochs_cpu_pauses_and_scores(tmp_path: Path) -> None:
    ncrfpp = load()
    peers, corpora = fake_setup(tmp_path)
    seen: list[int] = []

    def pause(k: int) -> None:
        seen.append(k)
        time.sleep(0.4)

    result = ncrfpp.run(2, peers, corpora, on_epoch_start=pause)
    assert seen == [0, 1]
    assert (result.train_sentences, result.train_chars) == (2, 5)
    assert [e.index for e in result.epochs] == [0, 1]
    for e in result.epochs:
        # the 0.3 s of CPU it burns; the 0.4 s pause counted in its printed time, not in ours
        assert 0.25 <= e.cpu_s <= 0.5
        assert e.paused_s >= 0.4
        assert e.printed_s >= 0.65
        assert e.wall_s == pytest.approx(e.printed_s - e.paused_s)
        assert e.wall_s < e.printed_s - 0.35
        assert e.cpu_clock_s is None or abs(e.cpu_clock_s - e.cpu_s) < 0.05
        assert e.chars == 5
        assert e.chars_per_cpu_s == pytest.approx(5 / e.cpu_s)
        assert e.dev.f1 == 0.5 and e.dev.sentences == 1 and e.dev.chars == 1
        assert e.dev.decode_s == pytest.approx(0.1)
        assert e.dev.cpu_s is not None and e.dev.cpu_s >= 0
    assert [e.test.f1 for e in result.epochs] == [0.6, 0.61]
    assert result.epochs[0].test.chars_per_s == pytest.approx(1 / 0.05)
    assert "| 2 |" in ncrfpp.table(result)


def test_batch_size_is_filled_in(tmp_path: Path) -> None:
    ncrfpp = load()
    peers, corpora = fake_setup(tmp_path)
    result = ncrfpp.run(1, peers, corpora, batch_size=32)
    assert result.batch_size == 32
    assert "     BatchSize: 32" in result.log


def test_failure_and_absence_are_reported(tmp_path: Path) -> None:
    ncrfpp = load()
    peers, corpora = fake_setup(tmp_path, TEMPLATE + "FAIL=1\n")
    with pytest.raises(ncrfpp.NCRFppError, match="status 3"):
        ncrfpp.run(1, peers, corpora)
    assert ncrfpp.missing(tmp_path / "nowhere") is not None
    assert ncrfpp.missing(peers) is None
    with pytest.raises(FileNotFoundError, match="NCRF\\+\\+ not found"):
        ncrfpp.run(1, tmp_path / "nowhere", corpora)


def test_corpus_counts(tmp_path: Path) -> None:
    ncrfpp = load()
    path = tmp_path / "x.bmes"
    path.write_text("a O\n\n\nb O\nc O\n\nd O\ne O\nf O", encoding="utf-8")  # no final newline
    assert ncrfpp.corpus_counts(path, None) == (3, 6)
    assert ncrfpp.corpus_counts(path, 3) == (2, 3)


def load_speed():  # type: ignore[no-untyped-def]
    load()
    return load_benchmark("speed")


def fake_side(speed, ncrfpp, b32: bool):  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    def ev(f1: float) -> object:
        return ncrfpp.Eval(f1=f1, precision=f1, recall=f1, acc=0.9, printed_s=1.0, speed=300.0,
                           sentences=300, chars=9000, cpu_s=1.5)

    epochs = [ncrfpp.Epoch(index=i, printed_s=50.0 + 5, paused_s=5.0, stop_latency_s=1e-4,
                           cpu_s=40.0 + i, cpu_clock_s=40.0 + i, chars=120_000,
                           dev=ev(0.8), test=ev(f1))
              for i, f1 in enumerate([0.80, 0.85, 0.84])]
    res = ncrfpp.Result(epochs=epochs, command="python main.py", batch_size=10,
                        train_sentences=3000, train_chars=120_000)
    t = speed.EpochTime

    def run(lr: float, rate: float, f1s: list[float]) -> object:
        return SimpleNamespace(config=SimpleNamespace(train=SimpleNamespace(lr=lr)),
                               times=[t(120_000, 120_000 / rate, 120_000 / rate * 1.1)
                                      for _ in f1s], test_f1=f1s)

    runs = {"10": run(0.002, 20_000, [0.83, 0.86]),
            "32": run(0.003, 30_000, [0.5, 0.7, 0.8, 0.9]),
            "64 bf16": run(0.004, 40_000, [0.5, 0.6])}
    padded = {bs: [t(120_000, 2.0, 2.0)] * 3 for bs in runs}
    side = {"ncrfpp": res, "runs": runs, "padded": padded, "paired": 2, "target": 0.85,
            "decode": {"dev@10": [t(9000, 0.5, 0.5)] * 2, "test@10": [t(9000, 0.5, 0.5)] * 2,
                       "test@64": [t(9000, 0.4, 0.4)] * 2},
            "loads": [1.0, 2.0], "emb": 50, "hidden": 100, "cap": None, "b32": None}
    if b32:
        side["b32"] = {"ncrfpp": ncrfpp.Result(epochs=[epochs[0]], batch_size=32),
                       "ours": [t(120_000, 4.0, 4.0)]}
    return side


@pytest.mark.parametrize("b32", [False, True])
def test_speed_renders_the_side_by_side_rows(b32: bool) -> None:
    speed = load_speed()
    ncrfpp = sys.modules["ncrfpp"]
    side = fake_side(speed, ncrfpp, b32)
    out: list[str] = []
    speed.render_side_headline(side, out.append)
    speed.render_side(side, out.append)
    text = "\n".join(out)
    # ours 20,000 chars/CPU-s vs NCRF++ 3,000 and 2,927 (120,000 chars in 40 and 41 CPU-s)
    assert "| our training epoch (batch 10) / NCRF++'s epoch" in text
    assert "(6.7x–6.8x)" in text
    t2a = speed.time_to_accuracy(side)
    # NCRF++ reaches its best (0.85) at epoch 2: 40 + 41 CPU-s; ours at batch 10 at epoch 2
    assert t2a[0]["epoch"] == 2 and t2a[0]["cpu_s"] == pytest.approx(81.0)
    assert t2a[1]["epoch"] == 2 and t2a[1]["cpu_s"] == pytest.approx(12.0)
    assert t2a[2]["epoch"] == 4 and t2a[3]["epoch"] is None
    assert "not reached in 2 epochs" in text
    assert ("NCRF++, 1 epoch at batch 32" in text) == b32
    assert "2,300" not in text


def test_speed_renders_a_missing_peer() -> None:
    speed = load_speed()
    out: list[str] = []
    side = {"skipped": "NCRF++ not found: no /x/NCRFpp/main.py"}
    speed.render_side_headline(side, out.append)
    speed.render_side(side, out.append)
    assert all("NCRF++ not found" in line for line in out if "measured" in line)
    assert not hasattr(speed, "NCRFPP_CHARS_PER_S")
