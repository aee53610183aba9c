"""An exported ONNX model predicts without torch: neither the library call nor the command
line imports it (checked in a fresh interpreter, where nothing else could have)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bmes_tagger.config import load_config
from bmes_tagger.train import train
from conftest import DATA, tiny_config

pytest.importorskip("onnxruntime", reason="needs the onnx extra")

PROBE = """
import sys, atexit
atexit.register(lambda: print("torch imported" if "torch" in sys.modules else "torch-free",
                              file=sys.stderr))
{body}
"""


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bmes_tagger.export import export_model

    tmp = tmp_path_factory.mktemp("torch-free")
    train(load_config(tiny_config(tmp, head="crf"), ["train.epochs=1"]), tmp / "run",
          progress=False)
    return export_model(tmp / "run" / "best.pt", tmp / "m.onnx")


def probe(body: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PROBE.format(body=body)], input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_library_call_without_torch(onnx_model: Path) -> None:
    out = probe(f"""
from bmes_tagger import Tagger
from bmes_tagger.predict import UserDict
t = Tagger.load({str(onnx_model)!r})
print(t.segment(["我们在北京工作。"], user_dict=UserDict(["北京工作"])))
print(t.nbest(["我们在北京"], 2)[0][0][1] > 0, len(t.confidence(["好"])[0]))
""")
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().endswith("torch-free"), out.stderr
    assert "'北京工作'" in out.stdout and "True 1" in out.stdout


def test_command_line_predict_and_eval_without_torch(onnx_model: Path) -> None:
    run = "import runpy, sys; sys.argv = {argv!r}; runpy.run_module('bmes_tagger', " \
          "run_name='__main__')"
    predict = probe(run.format(argv=["tagger", "predict", "-", "--model", str(onnx_model)]),
                    stdin="我们在北京工作。\n\n好\n")
    assert predict.returncode == 0, predict.stderr
    assert predict.stdout.count("\n") == 3 and "torch-free" in predict.stderr
    evaluate = probe(run.format(argv=["tagger", "eval", "--model", str(onnx_model), "--data",
                                      str(DATA / "sample-cws" / "test.txt"), "--json"]))
    assert evaluate.returncode == 0, evaluate.stderr
    assert '"f1"' in evaluate.stdout and "torch-free" in evaluate.stderr
