"""Model tests: shapes, gradients, padding invariance, and the cell equations as an oracle.

The recurrences of the design notes (LSTM: input, forget, output gates and cell state; GRU:
reset and update gates and candidate state; Elman RNN) are written once here in NumPy and run
with the model's own weights; the encoder must reproduce them for each cell type, in both
directions and across stacked layers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from bmes_tagger.config import ModelConfig
from bmes_tagger.features import EmbeddingSpec
from bmes_tagger.model import BiLSTMTagger
from bmes_tagger.tags import is_legal_bmes

TAGS = ["O", "B-PER", "M-PER", "E-PER", "S-PER", "B-LOC", "M-LOC", "E-LOC", "S-LOC"]


def make_model(**kwargs: object) -> BiLSTMTagger:
    torch.manual_seed(0)
    cfg = ModelConfig(**{"embedding_dim": 6, "hidden_size": 5, **kwargs})  # type: ignore[arg-type]
    return BiLSTMTagger(cfg, {"chars": EmbeddingSpec(20, cfg.embedding_dim, 1)},
                        num_tags=len(TAGS)).eval()


def decode(model: BiLSTMTagger, inputs: dict[str, torch.Tensor], lengths: torch.Tensor
           ) -> torch.Tensor:
    """What a Tagger does with the network's scores: Viterbi with the CRF's transitions (or
    none) and the BMES constraints when the config asks for them."""
    from bmes_tagger.batching import Batch
    from bmes_tagger.config import Config
    from bmes_tagger.model import TorchNetwork
    from bmes_tagger.predict import Tagger

    tagger = Tagger(TorchNetwork(model), {}, TAGS, Config(model=model.config))
    mask = (torch.arange(inputs["chars"].shape[1])[None] < lengths[:, None]).numpy()
    batch = Batch({k: v.numpy() for k, v in inputs.items()}, mask, lengths.numpy())
    return torch.from_numpy(tagger.decode(batch))


def batch(lengths: list[int], seed: int = 0
          ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """({"chars": (batch, seq_len, 1)}, lengths, mask) with random character ids."""
    gen = torch.Generator().manual_seed(seed)
    t = max(lengths)
    chars = torch.randint(2, 20, (len(lengths), t), generator=gen)
    lens = torch.tensor(lengths)
    mask = torch.arange(t)[None, :] < lens[:, None]
    return {"chars": chars.masked_fill(~mask, 0).unsqueeze(2)}, lens, mask


def rows(inputs: dict[str, torch.Tensor], i: int, n: int) -> dict[str, torch.Tensor]:
    """Row i of a batch, cut to its length n."""
    return {k: v[i:i + 1, :n] for k, v in inputs.items()}


# --- NumPy oracle ------------------------------------------------------------------------------


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def lstm_step(x, h, c, w_ih, w_hh, b_ih, b_hh):  # type: ignore[no-untyped-def]
    gates = w_ih @ x + b_ih + w_hh @ h + b_hh
    i, f, g, o = np.split(gates, 4)
    i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
    c = f * c + i * g           # forget part of the old cell, write the gated candidate
    h = o * np.tanh(c)          # expose the gated cell
    return h, c


def gru_step(x, h, w_ih, w_hh, b_ih, b_hh):  # type: ignore[no-untyped-def]
    xr, xz, xn = np.split(w_ih @ x + b_ih, 3)
    hr, hz, hn = np.split(w_hh @ h + b_hh, 3)
    r = sigmoid(xr + hr)        # reset gate
    z = sigmoid(xz + hz)        # update gate
    n = np.tanh(xn + r * hn)    # candidate state
    return (1 - z) * n + z * h


def rnn_step(x, h, w_ih, w_hh, b_ih, b_hh):  # type: ignore[no-untyped-def]
    return np.tanh(w_ih @ x + b_ih + w_hh @ h + b_hh)


def run_direction(cell: str, xs: np.ndarray, weights: list[np.ndarray], hidden: int) -> np.ndarray:
    h = np.zeros(hidden)
    c = np.zeros(hidden)
    out = []
    for x in xs:
        if cell == "lstm":
            h, c = lstm_step(x, h, c, *weights)
        elif cell == "gru":
            h = gru_step(x, h, *weights)
        else:
            h = rnn_step(x, h, *weights)
        out.append(h)
    return np.stack(out)


def oracle_emissions(model: BiLSTMTagger, chars: list[int]) -> np.ndarray:
    cfg = model.config
    params = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    layer_in = params["embedding.tables.chars.weight"][chars]
    for layer in range(cfg.num_layers):
        outs = []
        for suffix in ([""] + (["_reverse"] if cfg.bidirectional else [])):
            direction = 1 if suffix else 0
            w = [params[f"encoder.layers.{layer}.{direction}.{n}_l0"]
                 for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            if suffix:
                outs.append(run_direction(cfg.cell, layer_in[::-1], w, cfg.hidden_size)[::-1])
            else:
                outs.append(run_direction(cfg.cell, layer_in, w, cfg.hidden_size))
        layer_in = np.concatenate(outs, axis=1)  # bidirectional outputs are concatenated
    return layer_in @ params["output.weight"].T + params["output.bias"]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_encoder_matches_cell_equations(cell: str, bidirectional: bool, num_layers: int) -> None:
    model = make_model(cell=cell, bidirectional=bidirectional, num_layers=num_layers).double()
    inputs, lengths, _ = batch([7, 4], seed=1)
    got = model.emissions(inputs, lengths).detach().numpy()
    for row in range(2):
        n = int(lengths[row])
        expected = oracle_emissions(model, inputs["chars"][row, :n, 0].tolist())
        np.testing.assert_allclose(got[row, :n], expected, rtol=1e-9, atol=1e-9)
        assert np.all(got[row, n:] == model.output.bias.detach().numpy())


# --- behaviour ---------------------------------------------------------------------------------


@pytest.mark.parametrize("head", ["softmax", "crf"])
def test_shapes_and_every_parameter_gets_a_gradient(head: str) -> None:
    model = make_model(head=head, num_layers=2).train()
    inputs, lengths, mask = batch([6, 3, 1])
    assert model.emissions(inputs, lengths).shape == (3, 6, len(TAGS))
    tags = torch.randint(0, len(TAGS), mask.shape)
    loss = model(inputs, lengths, tags, mask)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        if name != "embedding.tables.chars.weight":
            assert p.grad.abs().sum() > 0, name
    # the padding row of the embedding never learns
    assert model.embedding.tables["chars"].weight.grad[0].abs().sum() == 0


@pytest.mark.parametrize("head", ["softmax", "crf"])
@pytest.mark.parametrize("constrained", [True, False])
def test_batched_equals_one_by_one(head: str, constrained: bool) -> None:
    model = make_model(head=head, constrained=constrained)
    inputs, lengths, mask = batch([9, 5, 2, 7], seed=3)
    together = decode(model, inputs, lengths)
    emissions = model.emissions(inputs, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone = decode(model, rows(inputs, i, n), lengths[i:i + 1])
        assert together[i, :n].tolist() == alone[0].tolist()
        assert torch.all(together[i, n:] == 0)
        alone_em = model.emissions(rows(inputs, i, n), lengths[i:i + 1])
        torch.testing.assert_close(emissions[i, :n], alone_em[0])


@pytest.mark.parametrize("head", ["softmax", "crf"])
def test_constrained_decoding_is_always_legal(head: str) -> None:
    model = make_model(head=head, constrained=True)
    # Push the output layer towards illegal tags so constraints have work to do.
    with torch.no_grad():
        model.output.bias.copy_(torch.tensor([-3.0, -2, 3, 3, -2, -2, 3, 3, -2]))
    inputs, lengths, mask = batch([8, 3, 5, 1, 6], seed=5)
    best = decode(model, inputs, lengths)
    for row, n in zip(best.tolist(), lengths.tolist()):
        assert is_legal_bmes([TAGS[t] for t in row[:n]])


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_encoder_equals_packed_torch_rnn_on_migrated_weights(cell: str) -> None:
    """The per-direction padded encoder computes exactly what one bidirectional multi-layer
    torch RNN over packed sequences computes (the layout older checkpoints were saved in)."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from bmes_tagger.checkpoint import migrate_state_dict
    from bmes_tagger.model import CELLS

    torch.manual_seed(3)
    reference = CELLS[cell](6, 5, num_layers=2, bidirectional=True, batch_first=True).double()
    model = make_model(cell=cell, num_layers=2).double()
    old = {f"encoder.{k}": v for k, v in reference.state_dict().items()}
    model.load_state_dict({**model.state_dict(), **migrate_state_dict(old)})
    x = torch.randn(3, 7, 6, dtype=torch.float64)
    lengths = torch.tensor([7, 2, 5])
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    expected, _ = pad_packed_sequence(reference(packed)[0], batch_first=True, total_length=7)
    got = model.encoder(x, lengths)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_keeps_expectation_and_locked_mask_is_shared_over_time(p: float) -> None:
    from bmes_tagger.model import Dropout, LockedDropout

    torch.manual_seed(0)
    x = torch.ones(64, 50, 40)
    plain, locked = Dropout(p), LockedDropout(p)
    y, z = plain(x), locked(x)
    for out in (y, z):
        # survivors are scaled by 1 / (1 - p) (inverted dropout), the rest are 0
        assert out.unique().tolist() == [0.0, pytest.approx(1 / (1 - p))]
        assert float((out == 0).float().mean()) == pytest.approx(p, abs=0.02)
        assert float(out.mean()) == pytest.approx(1.0, abs=0.05)
    # element-wise: masks differ across time; locked: one mask per sentence and feature
    assert not torch.equal(y[:, 0], y[:, 1])
    assert torch.equal(z, z[:, :1].expand_as(z))
    plain.eval()
    locked.eval()
    assert plain(x) is x and locked(x) is x


def test_encoder_names_in_the_config_are_the_registry() -> None:
    from bmes_tagger.config import ENCODERS as NAMES
    from bmes_tagger.model import ENCODERS

    assert list(ENCODERS) == NAMES


class WindowEncoder(torch.nn.Module):
    """A non-recurrent encoder (one 3-wide convolution), added only through the registry."""

    def __init__(self, config: ModelConfig, input_dim: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(input_dim, 12, 3, padding=1)
        self.output_dim = 12

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # (batch, seq_len, 1): padding is zeroed first, so it never reaches a real position
        keep = (torch.arange(x.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(2)
        x = x * keep.to(x.dtype)
        return torch.relu(self.conv(x.transpose(1, 2)).transpose(1, 2)) * keep.to(x.dtype)


def test_a_registered_encoder_trains_saves_loads_and_exports(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The encoder seam: a new encoder needs no change to heads, checkpoints or export."""
    from bmes_tagger import Tagger, config, model
    from bmes_tagger.config import load_config
    from bmes_tagger.train import train
    from conftest import DATA, tiny_config

    monkeypatch.setattr(model, "ENCODERS", dict(model.ENCODERS))
    try:
        model.register_encoder("window", WindowEncoder)
        for head in ("softmax", "crf"):
            cfg = load_config(tiny_config(tmp_path, head=head), ["model.encoder=window"])
            train(cfg, tmp_path / head, progress=False)
            tagger = Tagger.load(tmp_path / head / "best.pt")
            assert isinstance(tagger.network.module.encoder, WindowEncoder)
            texts = [t for t in (DATA / "sample-cws" / "raw.txt").read_text("utf-8")
                     .splitlines() if t][:20]
            words = tagger.segment(texts)
            assert ["".join(w) for w in words] == [t.replace(" ", "") for t in texts]
            pytest.importorskip("onnxruntime")
            from bmes_tagger.export import export_model

            onnx = Tagger.load(export_model(tmp_path / head / "best.pt",
                                            tmp_path / f"{head}.onnx"))
            assert onnx.segment(texts) == words
    finally:
        config.ENCODERS.remove("window")


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 5),
       st.lists(st.integers(0, 11), min_size=1, max_size=20))
def test_a_fixed_tail_table_reads_like_one_whole_table(trained: int, fixed: int, dim: int,
                                                       ids: list[int]) -> None:
    """FixedTailEmbedding (model.extend_vocab) = one nn.Embedding over the trained rows then
    the tail, for any ids; only the trained rows get gradients, <pad> none."""
    from bmes_tagger.model import FixedTailEmbedding, set_rows

    size = 2 + trained + fixed
    ids_t = torch.tensor([i % size for i in ids])
    torch.manual_seed(len(ids))
    whole = torch.randn(size, dim)
    whole[0] = 0.0
    table = FixedTailEmbedding(size, dim, fixed, padding_idx=0)
    set_rows(table, torch.arange(size), whole)
    assert table.num_embeddings == size - fixed and table.tail.shape == (fixed, dim)
    assert not table.tail.requires_grad
    out = table(ids_t)
    assert torch.equal(out, F.embedding(ids_t, whole))
    out.sum().backward()
    assert table.tail.grad is None and table.weight.grad is not None
    assert torch.equal(table.weight.grad[0], torch.zeros(dim))
    counts = torch.bincount(ids_t, minlength=size)[:size - fixed].float()
    counts[0] = 0.0
    assert torch.equal(table.weight.grad[:, 0], counts)
