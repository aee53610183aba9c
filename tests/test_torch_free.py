"""An exported ONNX model predicts without torch: neither the library call nor the command
line imports it (checked in a fresh interpreter, where nothing else could have)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bmes_tagger.config import load_config
from bmes_tagger.train import train
from conftest import DATA, tiny_config

pytest.importorskip("onnxruntime", reason="needs the onnx extra")

# also names the packages a one-line predict must not pay for: typer 0.29's pydantic adapters
# and rich's console were a third of the start-up of `tagger predict`; PyYAML reads configs,
# which predicting from a model file never does
PROBE = """
import sys, atexit
def report():
    heavy = [m for m in ("pydantic", "rich", "yaml") if m in sys.modules]
    print(f"heavy: {{' '.join(heavy)}}" if heavy else "light", file=sys.stderr)
    print("torch imported" if "torch" in sys.modules else "torch-free", file=sys.stderr)
atexit.register(report)
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
    assert "light" in predict.stderr.splitlines(), predict.stderr
    evaluate = probe(run.format(argv=["tagger", "eval", "--model", str(onnx_model), "--data",
                                      str(DATA / "sample-cws" / "test.txt"), "--json"]))
    assert evaluate.returncode == 0, evaluate.stderr
    assert '"f1"' in evaluate.stdout and "torch-free" in evaluate.stderr


# `import torch` fails as it does where torch is not installed (here it is, so it is blocked)
BLOCKED = """
import runpy, sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoTorch())
sys.argv = ["tagger", *sys.argv[1:]]
runpy.run_module("bmes_tagger", run_name="__main__")
"""


def without_torch(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCKED, *argv], input="我们\n",
                          capture_output=True, text=True, timeout=120)


def test_what_needs_torch_says_so_in_one_line(onnx_model: Path) -> None:
    """A deployment install (numpy, onnxruntime): checkpoints and TorchScript files need
    torch, and the error says what to install (it was a ModuleNotFoundError traceback)."""
    from bmes_tagger.export import export_model

    checkpoint = onnx_model.parent / "run" / "best.pt"
    script = export_model(checkpoint, onnx_model.with_suffix(".ts"), "torchscript", force=True)
    install = "pip install torch==2.13.0"
    cases = {
        ("info", str(checkpoint)): f"{checkpoint}: reading a checkpoint (.pt) needs torch",
        ("predict", "-", "--model", str(checkpoint)):
            f"{checkpoint}: reading a checkpoint (.pt) needs torch",
        ("eval", "--model", str(checkpoint), "--data", str(DATA / "sample-cws" / "test.txt")):
            f"{checkpoint}: reading a checkpoint (.pt) needs torch",
        ("predict", "-", "--model", str(script), "--trust-code"):
            f"{script}: a TorchScript model (.ts) needs torch",
        ("info", str(script), "--trust-code"): f"{script}: a TorchScript model (.ts) needs torch",
        ("export", str(checkpoint)): "tagger export needs torch",
    }
    for argv, needle in cases.items():
        proc = without_torch(*argv)
        assert proc.returncode == 1, (argv, proc.stderr)
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, (argv, proc.stderr)
        assert lines[0].startswith(f"error: {needle}") and install in lines[0], lines[0]
    # the exported ONNX model still predicts there
    proc = without_torch("predict", "-", "--model", str(onnx_model))
    assert proc.returncode == 0 and proc.stdout.strip() == "我们", proc.stderr


def test_cuda_or_bf16_with_an_exported_model_is_refused_not_ignored(onnx_model: Path) -> None:
    """An outside tester: `--device cuda` and `--bf16` with an ONNX model exited 0 and ran in
    float32 on the CPU, where the same options with the checkpoint fail or take effect."""
    from bmes_tagger import Tagger
    from bmes_tagger.errors import UsageError

    for kwargs, said in (({"device": "cuda"}, "device cuda (--device)"),
                         ({"device": "cuda:3"}, "device cuda:3 (--device)"),
                         ({"bf16": True}, "bf16 (--bf16)")):
        with pytest.raises(UsageError, match=re.escape(said)):
            Tagger.load(onnx_model, **kwargs)
    assert Tagger.load(onnx_model, device="cpu").segment(["好"]) == [["好"]]
    run = "import runpy, sys; sys.argv = {argv!r}; runpy.run_module('bmes_tagger', " \
          "run_name='__main__')"
    done = probe(run.format(argv=["tagger", "predict", "-", "--model", str(onnx_model),
                                  "--device", "cuda"]), stdin="我们\n")
    assert done.returncode == 2 and done.stderr.splitlines()[0] == (
        f"error: {onnx_model}: an exported model runs on the CPU in float32; device cuda "
        "(--device) is for checkpoints (.pt)"), done.stderr
