"""Promises of `tagger predict` and the Python API that an outside tester found broken: shards
of any file concatenate to the whole, every output format reads whitespace the same way,
n-best answers are distinct and honour forced boundaries, user-dictionary words survive the
max_len chunking, the API takes any iterable of texts, and `-` means standard output."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bmes_tagger.cli import app
from bmes_tagger.config import load_config
from bmes_tagger.corpus import count_lines, iter_lines
from bmes_tagger.output import file_lines
from bmes_tagger.train import train
from conftest import tiny_config

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One-epoch models on the bundled samples (a few seconds in all): CWS with a softmax
    and with a CRF head, NER with a CRF head."""
    out = {}
    for task, head in (("cws", "softmax"), ("cws", "crf"), ("ner", "crf")):
        tmp = tmp_path_factory.mktemp(f"contract-{task}-{head}")
        cfg = load_config(tiny_config(tmp, task, head), ["train.epochs=1"])
        train(cfg, tmp / "run", progress=False)
        out[f"{task}-{head}"] = tmp / "run" / "best.pt"
    return out


# --- F13: --shard and the lines of a file --------------------------------------------------

# lines of a few characters, joined by every kind of line end, with or without a final one
_line = st.text(alphabet="我们在北京工作。 a", max_size=4)
_end = st.sampled_from(["\n", "\r", "\r\n"])


@st.composite
def texts_with_line_ends(draw: st.DrawFn) -> str:
    lines = draw(st.lists(_line, max_size=8))
    ends = [draw(_end) for _ in lines]
    text = "".join(line + end for line, end in zip(lines, ends))
    if lines and draw(st.booleans()):
        text = text[:-len(ends[-1])]  # no final line end
    return text


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts_with_line_ends(), count=st.integers(1, 6))
def test_shards_of_any_file_concatenate_to_its_lines(tmp_path: Path, text: str,
                                                     count: int) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes(text.encode("utf-8"))
    whole = [line for _, line in iter_lines(path)]
    assert count_lines(path) == len(whole)
    shards = [list(file_lines(path, (i, count))) for i in range(count)]
    assert [line for shard in shards for line in shard] == whole
    assert list(file_lines(path)) == whole


def test_predict_shards_of_lone_cr_and_no_final_newline(models: dict[str, Path],
                                                        tmp_path: Path) -> None:
    """Through the command line: a lone CR ends a line for the reader, and so for the shard
    split; the last line needs no line end."""
    raw = tmp_path / "in.txt"
    raw.write_bytes("我们在北京\r工作。\r\n\r\r好的\n北京\r我们".encode())
    model = str(models["cws-softmax"])
    code, whole, err = invoke("predict", str(raw), "--model", model)
    assert code == 0, err
    assert whole.count("\n") == 7
    for n in (2, 3, 4, 7, 9):
        parts = []
        for i in range(n):
            code, out, err = invoke("predict", str(raw), "--model", model, "--shard", f"{i}/{n}")
            assert code == 0, err
            parts.append(out)
        assert "".join(parts) == whole, n
