"""The ``tagger`` command line: thin typer wrappers over the library functions.

Exit codes: 0 success; 1 a user error (bad input, config or checkpoint; one line on stderr);
2 wrong command-line usage (typer's, and :class:`UsageError`); 130 interrupted (Ctrl-C);
128+N stopped by signal N (SIGTERM: 143, SIGHUP: 129) in commands that write files; 141 the
output pipe was closed early.

Help is plain text (``rich_markup_mode=None``): rich markup would eat the square brackets of
``pip install 'bmes_tagger[onnx]'`` and decorate boolean flags with ``<bool>``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from .atomic import atomic_write, check_output, same_file
from .errors import BmesTaggerError, ConfigError, UsageError, interruption, require_torch
from .tags import SCHEMES

app = typer.Typer(
    name="tagger",
    help="Train, run and evaluate character-level BiLSTM taggers for Chinese word segmentation "
    "(CWS) and named-entity recognition (NER) with BMES tags.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

def _device_name(value: str | None) -> str | None:
    """--device's spelling is checked by the parser (exit 2); whether the machine has that
    device is checked when it is used."""
    from .config import DEVICE_PATTERN

    if value is not None and not re.fullmatch(DEVICE_PATTERN, value):
        raise typer.BadParameter(f"{value!r}: expected auto, cpu, cuda or cuda:N")
    return value


DebugOpt = Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or log lines.")]
ThreadsOpt = Annotated[int, typer.Option(
    "--threads", min=0, help="CPU threads of the network (0: the library's default, all cores; "
    "1 is safest on a busy machine).")]
DeviceOpt = Annotated[str, typer.Option("--device", callback=_device_name,
                                        help="auto (CUDA when available), cpu, cuda or "
                                        "cuda:N.")]
TrustOpt = Annotated[bool, typer.Option("--trust-code", help="Allow loading a TorchScript "
                                        "(.ts) model, which runs code from the file.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="SECTION.KEY=VALUE",
                 help="Override a config key, e.g. --set train.lr=0.002 (repeatable)."),
]


# word2vec allocates vocabulary x dim floats several times over: a typo of a size must be a
# usage error, not an attempt at terabytes
_MAX_VECTOR_DIM = 4096


class _Stopped(BaseException):
    """SIGTERM or SIGHUP, raised where the command is (like Ctrl-C's KeyboardInterrupt), so
    that the writers' cleanup runs: no partial temporary is left behind."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _user_errors(debug: bool, stop_signals: bool = False) -> Iterator[None]:
    """Turn expected failures into one line on stderr and exit code 1 (130 on Ctrl-C; with
    ``stop_signals``, 128+N on SIGTERM/SIGHUP)."""
    # A file size limit (ulimit -f) otherwise kills the process with SIGXFSZ mid-write,
    # leaving a temporary; ignored, the write fails with EFBIG and is reported.
    _set_signal(signal.SIGXFSZ, signal.SIG_IGN)
    stopper = _Stopper() if stop_signals else None
    try:
        try:
            yield
        finally:
            if stopper is not None:
                stopper.restore()  # before the handlers below: they must not be cut short
    except UsageError as exc:
        if debug:
            raise
        _fail(str(exc), code=2)
    except BmesTaggerError as exc:
        if debug:
            raise
        _fail(str(exc))
    except BrokenPipeError:
        # the reader went away (`tagger predict ... | head`): stop quietly, like Unix tools
        # killed by SIGPIPE
        _discard_stdout()
        raise typer.Exit(141) from None
    except ImportError as exc:
        # a signal while an extension module initialised (see errors.interruption)
        cause = interruption(exc)
        if cause is None:
            raise
        raise _interrupted_by(cause) from None
    except (OSError, UnicodeError) as exc:
        if debug:
            raise
        name = getattr(exc, "filename", None)
        reason = getattr(exc, "strerror", None) or str(exc)
        _fail(f"{name}: {reason}" if name else reason)
    except (KeyboardInterrupt, _Stopped) as exc:
        raise _interrupted_by(exc) from None


def _interrupted_by(exc: BaseException) -> BaseException:
    """Say (once) what interrupted the command and give the exit to raise: 130 for Ctrl-C,
    128+N for SIGTERM/SIGHUP; the entry point's SystemExit has said so already."""
    if isinstance(exc, SystemExit):
        return exc
    # through tqdm: a progress bar on stderr moves aside
    if isinstance(exc, _Stopped):
        _log_line(f"interrupted by {signal.Signals(exc.signum).name}")
        return _interrupted(128 + exc.signum)
    _log_line("interrupted")
    return _interrupted(130)


class _Stopper:
    """While it is installed, SIGTERM and SIGHUP raise :class:`_Stopped` and Ctrl-C
    ``KeyboardInterrupt``, once: a second signal while unwinding must not cut the cleanup
    short (two Ctrl-C 20 ms apart printed a traceback from a finalizer). Signals the parent
    set to be ignored (``nohup``) stay ignored. (The training loop's own handler takes over
    inside the loop: there the first Ctrl-C stops after the batch and a second aborts.)"""

    SIGNALS = (signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.fired = False
        # what was there before (the default, or the entry point's start-up handler) comes
        # back afterwards; an ignored signal, or one handled outside Python, is left alone
        self.previous = {s: signal.getsignal(s) for s in self.SIGNALS}
        self.installed = [s for s, h in self.previous.items()
                          if h not in (signal.SIG_IGN, None) and _set_signal(s, self._stop)]
        self.previous_int = signal.getsignal(signal.SIGINT)
        self.int_installed = self.previous_int is signal.default_int_handler and \
            _set_signal(signal.SIGINT, self._interrupt)

    def _stop(self, signum: int, frame: object) -> None:
        if not self.fired:
            self.fired = True
            raise _Stopped(signum)

    def _interrupt(self, signum: int, frame: object) -> None:
        if not self.fired:
            self.fired = True
            raise KeyboardInterrupt

    def restore(self) -> None:
        self.fired = True  # from here on a late signal is dropped, not raised mid-cleanup
        if _PROCESS.ends_with_command:
            # keep dropping until main() ignores SIGINT: a default handler put back here
            # would let a late Ctrl-C cut the exit short with a traceback
            return
        for signum in self.installed:
            _set_signal(signum, self.previous[signum])
        if self.int_installed:
            _set_signal(signal.SIGINT, self.previous_int)


def _ignore_stop_signals() -> None:
    for signum in (signal.SIGINT, *_Stopper.SIGNALS):
        _set_signal(signum, signal.SIG_IGN)


def _set_signal(signum: int, handler: Any) -> bool:
    """Install a handler where that is possible (only the main thread may)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    signal.signal(signum, handler)
    return True


def _fileno(stream: Any) -> int | None:
    """The descriptor of a standard stream, or None (closed, or replaced by a test runner)."""
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _discard_stdout() -> None:
    """Point standard output at /dev/null, so that the flush at exit cannot fail (and print
    'Exception ignored ...') after its reader went away or a write failed."""
    fd = _fileno(sys.stdout)
    if fd is None:
        return
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)


def _needs_torch(what: str) -> None:
    """A one-line error where torch is missing (a deployment install predicts with ONNX
    files only)."""
    try:
        require_torch(what)
    except BmesTaggerError as exc:
        _fail(str(exc))


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message.splitlines()[0] if message else 'failed'}", err=True)
    raise typer.Exit(code)


def _out(text: str) -> None:
    """Print a command's result on stdout. A reader that went away (``| head``) ends the
    command with 141, as SIGPIPE would (click would turn it into a silent 1); a closed or
    failing stdout (``>&-``, a full disk) is one line naming ``<stdout>``, never a result
    silently lost."""
    if sys.stdout is None:
        _fail("<stdout>: standard output is closed; the result could not be printed")
    try:
        typer.echo(text)
    except BrokenPipeError:
        _discard_stdout()
        raise typer.Exit(141) from None
    except OSError as exc:
        _discard_stdout()  # the flush at exit would fail again, with a traceback
        _fail(f"<stdout>: {exc.strerror or exc}")




@app.command("train", context_settings={"allow_extra_args": True})
def train_cli(
    ctx: typer.Context,
    config: Annotated[Path, typer.Argument(metavar="CONFIG", help="YAML config file.",
                                          show_default=False)],
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                help="Run directory (default: output.dir).")]
    = None,
    overrides: SetOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in the run "
                                         "directory from its last.pt (or its refit from "
                                         "refit-last.pt).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite a run directory that "
                                        "already holds a run.")] = False,
    quiet: QuietOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also print the resolved "
                                          "config first and all best dev scores at the end.")]
    = False,
    device: Annotated[str | None, typer.Option(
        "--device", callback=_device_name, help="auto (CUDA when available), cpu, cuda or "
        "cuda:N (default: train.device).")] = None,
    threads: Annotated[int | None, typer.Option(
        "--threads", min=0, help="torch CPU threads (default: train.threads).")] = None,
    seeds: Annotated[str | None, typer.Option(
        "--seeds", metavar="N [N ...]", help="Train one run per seed into RUN_DIR/seed-N and "
        "report mean and sd of dev (and test) scores in RUN_DIR/seeds.json; RUN_DIR/best.pt "
        "links to the best seed's model.")] = None,
    debug: DebugOpt = False,
) -> None:
    """Train a tagger as CONFIG describes.

    Writes best.pt, last.pt, config.yaml, metrics.jsonl and train.log into the run directory
    (with train.refit also refit.pt: trained on train + dev for the best epoch's number of
    epochs).

    Example: tagger train configs/sample-cws.yaml --set train.epochs=5
    """
    from .config import load_config
    _needs_torch("tagger train")
    from .seeds import train_seeds
    from .train import train

    _no_stdout(output, "--output", "a run directory is a folder")
    seed_list = _seed_list(seeds, ctx.args)
    # stop signals: SIGTERM before the training loop (reading the corpus, say) unwinds through
    # the run directory's cleanup; inside the loop the first one asks it to stop and save
    with _user_errors(debug, stop_signals=True):
        sets = list(overrides or [])
        sets += [f"train.device={device}"] if device is not None else []
        sets += [f"train.threads={threads}"] if threads is not None else []
        cfg = load_config(config, sets)
        if cfg.data.train is None and not resume:
            raise BmesTaggerError(f"{config}: data.train: required for training (set it in the "
                                  "config or with --set data.train=PATH)")
        log = None if quiet else _log_line
        if verbose:
            import yaml

            typer.echo(yaml.safe_dump(cfg.to_dict(), sort_keys=False, allow_unicode=True),
                       err=True)
        try:
            if seed_list is not None:
                many = train_seeds(cfg, seed_list, output, resume=resume, force=force,
                                   progress=not quiet, log=log, config_file=config)
                result = many.runs[-1]
            else:
                result = train(cfg, output, resume=resume, force=force, progress=not quiet,
                               log=log, config_file=config)
        except ConfigError as exc:
            # train() raises some config errors (data.train missing, --resume mismatch) without
            # a source of its own: they are about this config file
            if exc.source is None:
                raise exc.located(str(config)) from None
            raise
    if not result.is_main:
        return  # rank 0 of a data-parallel run reports
    if result.interrupted:
        saved = result.state_file or result.run_dir / "last.pt"
        # the same command with --resume: every --set (a resume with the config file alone
        # would train another run: fewer epochs, no refit, another model size) and, for
        # --seeds, the seeds and the parent folder (a seed's folder alone would lose them)
        run_dir = result.run_dir.parent if seed_list is not None else result.run_dir
        words = ["tagger", "train", str(config), "--output", str(run_dir)]
        for item in overrides or []:
            words += ["--set", item]
        words += ["--device", device] if device is not None else []
        words += ["--threads", str(threads)] if threads is not None else []
        words += ["--seeds", *map(str, seed_list)] if seed_list is not None else []
        words += ["--quiet"] if quiet else []  # the resumed run reports as this one did
        words += ["--verbose"] if verbose else []
        typer.echo(f"interrupted: saved {saved}; resume with: "
                   f"{shlex.join([*words, '--resume'])}", err=True)
        raise _interrupted(128 + (result.signal or 2))
    if seed_list is not None:
        _out(format_seeds(many.summary, many.run_dir))
        return
    best = result.best_scores
    if verbose:
        _out(json.dumps(best, ensure_ascii=False, indent=2))
    _out(f"best dev F1 {best.get('f1', 0.0):.4f} (P {best.get('precision', 0.0):.4f} "
               f"R {best.get('recall', 0.0):.4f}) at epoch {result.best_epoch}; "
               f"model: {result.run_dir / 'best.pt'}")
    refit = result.refit
    if refit is not None:
        _out(f"refit on train + dev for {refit.epochs} epochs: {refit.path} (its dev F1 "
             f"{refit.dev_scores.get('f1', 0.0):.4f} is not held out)")
        if refit.test_scores is not None and refit.best_test_scores is not None:
            _out(f"test F1: best.pt {refit.best_test_scores.get('f1', 0.0):.4f}, refit.pt "
                 f"{refit.test_scores.get('f1', 0.0):.4f}")


@app.command("predict")
def predict_cli(
    input: Annotated[str, typer.Argument(metavar="INPUT",
                                         help="Text file, one input per line, or - for stdin.",
                                         show_default=False)],
    model: Annotated[Path, typer.Option("--model", "-m", help="Checkpoint (best.pt), or a "
                                        "model from `tagger export` (.onnx, .ts).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead "
                                                "of stdout (- is stdout).")] = None,
    format: Annotated[str | None, typer.Option(
        "--format", "-f",
        help="CWS: segmented (default; words joined by two spaces), conll, jsonl. "
        "NER: jsonl (default; text and entities), conll. "
        "POS: pos (default; word/POS joined by two spaces), conll.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1,
                                            help="Sentences per forward pass.")] = 64,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --output if it exists.")]
    = False,
    user_dict: Annotated[Path | None, typer.Option(
        "--dict", help="Word-segmentation user dictionary (one word per line): listed words "
        "stay whole.")] = None,
    nbest: Annotated[int, typer.Option(
        "--nbest", min=0, max=100, help="Print the K best analyses per line with probabilities "
        "as JSON "
        "lines (CRF models).")] = 0,
    shard: Annotated[str | None, typer.Option(
        "--shard", metavar="I/N", help="Tag only the I-th of N contiguous blocks of lines "
        "(0-based), so N jobs can split a file; their outputs concatenate to the whole.")]
    = None,
    threads: ThreadsOpt = 1,
    bf16: Annotated[bool, typer.Option("--bf16", help="Run the network in bfloat16 (faster on "
                                       "CPUs with bf16 instructions; decoding stays float32).")]
    = False,
    device: DeviceOpt = "auto",
    trust_code: TrustOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Tag raw text with a trained model: one output line per input line, in order.

    Example: tagger predict input.txt --model runs/sample-cws/best.pt > output.txt
    """
    from .corpus import iter_stream_lines
    from .output import (
        OUTPUT_FORMATS,
        file_lines,
        parse_shard,
        predict_lines,
        read_errors_named,
        write_records,
    )
    from .predict import Tagger, UserDict

    span = _shard_of(input, shard, parse_shard)  # usage errors (exit 2) before any work
    if output is not None and str(output) == "-":
        output = None  # - is standard output, as it is for convert's OUT
    with _user_errors(debug, stop_signals=True):
        if input == "-" and sys.stdin is None:
            raise BmesTaggerError("<stdin>: standard input is closed; give a file instead of -")
        if output is None and sys.stdout is None:
            raise BmesTaggerError("<stdout>: standard output is closed; use --output FILE")
        inputs = {"the input": None if input == "-" else input,
                  "standard input": _fileno(sys.stdin) if input == "-" else None,
                  "--model": model, "--dict": user_dict}
        if output is not None:
            check_output(output, force=force, inputs=inputs)
        else:
            _refuse_stdout_as_input(inputs)
        tagger = Tagger.load(model, bf16=bf16, device=device, trust_code=trust_code,
                             threads=threads)
        # predict_lines is a generator: check the format now, not at the first output line.
        if format is not None and format not in OUTPUT_FORMATS[tagger.task]:
            raise UsageError(f"--format: {format!r} is not available for {tagger.task}; "
                                  f"choose {', '.join(OUTPUT_FORMATS[tagger.task])}")
        if input == "-":
            lines = read_errors_named((text for _, text in iter_stream_lines(
                sys.stdin.buffer, "<stdin>")), "<stdin>")
        else:
            lines = file_lines(input, span)
        lines = _with_progress(lines, output,
                               input if input != "-" and span is None else None)
        dictionary = UserDict.load(user_dict) if user_dict is not None else None
        try:
            records = predict_lines(tagger, lines, format, batch_size, user_dict=dictionary,
                                    nbest=nbest)
        except ValueError as exc:
            raise BmesTaggerError(str(exc)) from None
        if output is None:
            try:
                write_records(records, sys.stdout, "<stdout>")
            except BmesTaggerError as exc:
                if isinstance(exc, OSError):  # the write failed: no flush at exit either
                    _discard_stdout()
                raise
        else:
            with atomic_write(output, force=force, inputs=inputs) as f:
                write_records(records, f, str(output))


def _with_progress(lines: Iterator[str], output: Path | None, path: str | None = None
                   ) -> Iterator[str]:
    """Show progress on a tqdm bar when stderr is a terminal that the output does not also go
    to (the bar would be drawn among the tagged lines): bytes of the input read, out of the
    file's size when ``path`` is a whole file, with lines and characters per second. An
    ``output`` that is a character device (/dev/tty, /dev/stdout on a terminal) counts as a
    terminal."""
    if sys.stderr is None or not sys.stderr.isatty():
        return lines
    if output is None:
        if sys.stdout is not None and sys.stdout.isatty():
            return lines
    else:
        try:
            if stat.S_ISCHR(os.stat(output).st_mode):
                return lines
        except OSError:
            pass  # a file still to be made
    return _progress(lines, os.path.getsize(path) if path is not None else None)


def _progress(lines: Iterator[str], total: int | None) -> Iterator[str]:
    from tqdm import tqdm

    bar = tqdm(total=total, desc="tagging", unit="B", unit_scale=True, unit_divisor=1024,
               leave=False, mininterval=0.5)
    count = chars = 0
    start = shown = time.monotonic()
    try:
        for line in lines:
            yield line
            count += 1
            chars += len(line)
            # the line's bytes and its newline: the file's size is the total
            bar.update(len(line.encode("utf-8", "surrogatepass")) + 1)
            now = time.monotonic()
            if now - shown >= 0.5:
                shown = now
                bar.set_postfix_str(f"{count:,} lines, {chars / (now - start):,.0f} chars/s",
                                    refresh=False)
        elapsed = max(time.monotonic() - start, 1e-9)
        bar.set_postfix_str(f"{count:,} lines, {chars / elapsed:,.0f} chars/s")
    finally:
        bar.close()


def _shard_of(input: str, shard: str | None, parse: Any) -> tuple[int, int] | None:
    """``--shard I/N`` as (I, N). Counting lines needs a file that can be read twice, so a
    pipe or stdin is refused up front: counting would consume the stream and tag nothing."""
    if shard is None:
        return None
    try:
        span = parse(shard)
    except ValueError as exc:
        raise typer.BadParameter(str(exc).removeprefix("--shard: "),
                                 param_hint="'--shard'") from None
    if input == "-":
        raise typer.BadParameter("needs a file, not standard input (-): the lines are counted "
                                 "first, which would consume the stream", param_hint="'--shard'")
    try:
        mode = os.stat(input).st_mode
    except OSError:
        return span  # missing or unreadable: reading it says so (exit 1)
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise typer.BadParameter(f"needs a regular file, and {input} is a pipe or device: the "
                                 "lines are counted first, which would consume the stream",
                                 param_hint="'--shard'")
    return span


def _no_stdout(path: Path | None, option: str, why: str) -> None:
    """``-`` means standard output where a command can write its result there (predict,
    convert); elsewhere it is refused as usage (exit 2) rather than creating a file named
    ``-`` that the user did not mean."""
    if path is not None and str(path) == "-":
        raise typer.BadParameter(f"- (standard output) is not supported here: {why}; give a "
                                 "file name", param_hint=f"'{option}'")


def _refuse_stdout_as_input(inputs: dict[str, Any]) -> None:
    """``tagger predict in.txt >> in.txt`` would read its own output without end (cat
    refuses it too); the same for any file the command reads."""
    out = _fileno(sys.stdout)
    if out is None:
        return
    for what, source in inputs.items():
        if source is not None and same_file(out, source):
            shown = "" if isinstance(source, int) else f" ({source})"
            raise BmesTaggerError(f"<stdout>: is the same file as {what}{shown}; refusing to "
                                  "write over an input")


@app.command("eval")
def evaluate_cli(
    config: Annotated[Path | None, typer.Argument(
        metavar="CONFIG", help="Config of a trained run: evaluates its best.pt on data.test.",
        show_default=False)]
    = None,
    model: Annotated[Path | None, typer.Option("--model", "-m", help="Checkpoint to evaluate "
                                               "(default: the config's run best.pt).")] = None,
    data: Annotated[Path | None, typer.Option("--data", "-d", help="Labelled file "
                                              "(default: the config's data.test).")] = None,
    format: Annotated[str | None, typer.Option(
        "--format", "-f", help="Format of --data: segmented, conll, jsonl, conllu or pos "
        "(default: the model's).")]
    = None,
    scheme: Annotated[str | None, typer.Option(
        "--scheme", help="Tag scheme of a conll --data file: bmes, bioes or bio.")] = None,
    train_words: Annotated[Path | None, typer.Option(
        "--train-words", help="Word list for CWS OOV metrics (default: the checkpoint's).")]
    = None,
    overrides: SetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
    = False,
    threads: ThreadsOpt = 1,
    device: DeviceOpt = "auto",
    trust_code: TrustOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Score a model on a labelled file: span precision, recall and F1.

    CWS is counted as the SIGHAN 2005 scorer does, with OOV and IV recall; NER counts exact
    (type, start, end) span matches, with a per-type table.

    Examples: tagger eval configs/sample-cws.yaml |
    tagger eval --model runs/x/best.pt --data test.txt --format segmented --json
    """
    from .config import load_config
    from .corpus import FORMATS, read_word_list
    from .evaluate import evaluate, read_eval_data
    from .predict import Tagger

    with _user_errors(debug):
        if config is None and (model is None or data is None):
            raise UsageError("give a CONFIG, or both --model and --data")
        if config is None and overrides:
            raise UsageError(f"--set {overrides[0]}: --set needs a CONFIG to override")
        repair = False
        if config is not None:
            cfg = load_config(config, overrides or [])
            if data is None:
                if cfg.data.test is None:
                    raise BmesTaggerError(f"{config}: data.test is not set; pass --data FILE")
                data = Path(cfg.data.test)
            if model is None:
                model = _run_model(config, Path(cfg.output.dir or ""))
            format = format or cfg.data.format
            scheme = scheme or cfg.data.scheme
            repair = cfg.data.repair_gold
        if format is not None and format not in FORMATS:
            raise UsageError(f"--format: {format!r} is not one of {', '.join(FORMATS)}")
        if scheme is not None and scheme not in SCHEMES:
            raise UsageError(f"--scheme: {scheme!r} is not one of {', '.join(SCHEMES)}")
        tagger = Tagger.load(model, device=device, trust_code=trust_code, threads=threads)
        sentences = read_eval_data(tagger, data, format, scheme, repair)
        words = read_word_list(train_words) if train_words is not None else None
        scores = evaluate(tagger, sentences, words)
        result = scores.to_dict()
        if as_json:
            _out(json.dumps(result, ensure_ascii=False, indent=2))
        else:
            _out(format_scores(result, tagger.task, str(data), str(model)))


def _run_model(config: Path, run_dir: Path) -> Path:
    """The best.pt of the run a config trained. ``output.dir`` is relative to the directory
    training ran in (documented), and so it is here: guessing another base could score a
    different run. When it is not there, the error says where it looked and what to pass."""
    model = run_dir / "best.pt"
    if model.exists() or run_dir.is_absolute():
        return model  # a missing absolute path: the checkpoint loader's own error
    hint = ""
    for base in (config.parent, config.parent.parent):
        candidate = base / run_dir / "best.pt"
        if candidate.is_file():
            hint = f", e.g. --model {candidate}"
            break
    raise BmesTaggerError(f"{model}: checkpoint not found (output.dir {str(run_dir)!r} of "
                          f"{config} is relative to the directory training ran in, and this "
                          f"is {Path.cwd()}); run tagger eval from there or pass --model "
                          f"PATH{hint}")


@app.command("debug-data")
def debug_data_cli(
    config: Annotated[Path, typer.Argument(help="YAML config file.", show_default=False)],
    overrides: SetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
    = False,
    debug: DebugOpt = False,
) -> None:
    """Describe a config's train, dev and test data before training on it.

    Counts, tag and type distributions, length histograms, sentences over data.max_len, gold
    that needs repair (with file:line), characters and bigrams unseen in train, OOV word rate,
    dev/test sentences that also occur in train, duplicates, width variants, non-BMP
    characters. Exits 1 only when the data cannot be read.

    Example: tagger debug-data configs/resume.yaml
    """
    from .config import load_config
    from .debug_data import debug_data, format_report

    with _user_errors(debug):
        report = debug_data(load_config(config, overrides or []))
    _out(json.dumps(report, ensure_ascii=False, indent=2) if as_json
               else format_report(report))


@app.command("lexicon")
def lexicon_cli(
    raw: Annotated[list[Path], typer.Argument(metavar="RAW...", help="Raw text files, one "
                                              "sentence or paragraph per line.",
                                              show_default=False)],
    model: Annotated[Path | None, typer.Option("--model", "-m", help="Word segmentation "
                                               "model (checkpoint or exported) to segment "
                                               "with.")] = None,
    jieba: Annotated[bool, typer.Option("--jieba", help="Segment with jieba instead (pip "
                                        "install 'bmes_tagger[jieba]').")] = False,
    out: Annotated[Path, typer.Option("--out", "-o", help="The word list to write.")]
    = Path("lexicon.txt"),
    min_count: Annotated[int, typer.Option("--min-count", min=1, help="Keep words seen at "
                                           "least this often.")] = 1,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")]
    = False,
    threads: ThreadsOpt = 1,
    trust_code: TrustOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Build a lexicon for model.lexicon: segment raw text and count the words.

    Writes 'word count' lines, most frequent first (the layout of jieba's dict.txt).

    Example: tagger lexicon raw.txt --model runs/pku/best.pt --out words.txt
    """
    from .predict import Tagger
    from .resources import count_words, raw_lines, write_lexicon

    _no_stdout(out, "--out", "the word list is written to a file")
    with _user_errors(debug, stop_signals=True):
        if (model is None) == (not jieba):
            raise UsageError("give --model CWS_MODEL or --jieba (one of them)")
        check_output(out, force=force, inputs={**{f"RAW {i + 1}": p for i, p in
                                                  enumerate(raw)}, "--model": model})
        segmenter = "jieba" if jieba else Tagger.load(model, threads=threads,
                                                      trust_code=trust_code)
        counts = count_words(raw_lines(raw), segmenter, progress=sys.stderr.isatty())
        n = write_lexicon(counts, out, min_count, force=force)
    _out(f"{out}: {n:,} words")


@app.command("vectors")
def vectors_cli(
    raw: Annotated[list[Path], typer.Argument(metavar="RAW...", help="Raw text files.",
                                              show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for chars.vec, bigrams.vec "
                                      "(and words.vec).")] = Path("vectors"),
    model: Annotated[Path | None, typer.Option("--model", "-m", help="Word segmentation "
                                               "model for word vectors.")] = None,
    jieba: Annotated[bool, typer.Option("--jieba", help="Word vectors from text segmented by "
                                        "jieba.")] = False,
    char_dim: Annotated[int, typer.Option("--char-dim", min=1, help="= model.embedding_dim.")]
    = 100,
    bigram_dim: Annotated[int, typer.Option("--bigram-dim", min=1, help="= model.bigram_dim.")]
    = 50,
    word_dim: Annotated[int, typer.Option("--word-dim", min=1, help="= model.lexicon_dim.")]
    = 50,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="word2vec epochs.")] = 5,
    min_count: Annotated[int, typer.Option("--min-count", min=1, help="Skip tokens seen less "
                                           "often.")] = 2,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the vector files.")]
    = False,
    threads: ThreadsOpt = 1,
    trust_code: TrustOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Train character, bigram and word vectors on raw text (gensim word2vec).

    Writes word2vec text files that model.char_vectors, model.bigram_vectors and
    model.word_vectors read (needs pip install 'bmes_tagger[vectors]').

    Example: tagger vectors raw.txt --out vectors --model runs/pku/best.pt
    """
    from .predict import Tagger
    from .resources import VectorSettings, raw_lines, train_vectors

    _no_stdout(out, "--out", "it is a folder for several vector files")
    with _user_errors(debug, stop_signals=True):
        if model is not None and jieba:
            raise UsageError("give --model or --jieba, not both")
        for flag, dim in (("--char-dim", char_dim), ("--bigram-dim", bigram_dim),
                          ("--word-dim", word_dim)):
            if dim > _MAX_VECTOR_DIM:
                raise UsageError(f"{flag}: {dim} is more than {_MAX_VECTOR_DIM}")
        inputs = {**{f"RAW {i + 1}": p for i, p in enumerate(raw)}, "--model": model}
        names = ["chars", "bigrams", *(["words"] if model is not None or jieba else [])]
        for name in names:
            check_output(out / f"{name}.vec", force=force, inputs=inputs)
        segmenter: Tagger | str | None = "jieba" if jieba else None
        if model is not None:
            segmenter = Tagger.load(model, threads=threads, trust_code=trust_code)
        settings = VectorSettings(char_dim=char_dim, bigram_dim=bigram_dim, word_dim=word_dim,
                                  epochs=epochs, min_count=min_count, threads=max(threads, 1))
        written = train_vectors(list(raw_lines(raw)), out, settings, segmenter, force=force,
                                progress=sys.stderr.isatty(), source=", ".join(map(str, raw)))
    for name, path in written.items():
        _out(f"{path} ({name})")


@app.command("convert")
def convert_cli(
    input: Annotated[Path, typer.Argument(metavar="IN", help="Labelled corpus to read.",
                                          show_default=False)],
    output: Annotated[Path, typer.Argument(metavar="OUT", help="File to write, or - for "
                                           "standard output.", show_default=False)],
    from_fmt: Annotated[str, typer.Option(
        "--from", help="Input format: segmented, conll, jsonl, conllu or pos.")],
    to_fmt: Annotated[str, typer.Option(
        "--to", help="Output format: segmented, conll, jsonl, conllu or pos.")],
    scheme: Annotated[str, typer.Option(
        "--scheme", help="Tag scheme of conll files: bmes, bioes or bio.")] = "bmes",
    to_scheme: Annotated[str | None, typer.Option(
        "--to-scheme", help="Tag scheme of conll output, if it differs from --scheme.")] = None,
    task: Annotated[str | None, typer.Option(
        "--task", help="What to read: cws, ner or pos (default: what the input holds; cws on "
        "POS data drops the POS).")] = None,
    pos_column: Annotated[str, typer.Option(
        "--pos-column", help="CoNLL-U column of the POS: upos or xpos.")] = "upos",
    repair: Annotated[bool, typer.Option(
        "--repair", help="Repair illegal conll gold sequences and overlapping jsonl "
        "mentions (the longest wins) instead of failing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUTPUT if it exists.")]
    = False,
    debug: DebugOpt = False,
) -> None:
    """Convert a labelled corpus between formats.

    Conversions that would lose annotation (e.g. NER spans to segmented text) are refused.

    Example: tagger convert train.json train.bmes --from jsonl --to conll --scheme bio
    """
    from .atomic import OutputError
    from .formats import convert
    from .output import NamedStream

    to_stdout = str(output) == "-"  # as predict reads - as stdin: never a file named "-"
    with _user_errors(debug, stop_signals=True):
        if to_stdout:
            if sys.stdout is None:
                raise BmesTaggerError("<stdout>: standard output is closed; give OUT a file")
            _refuse_stdout_as_input({"IN": input})
            try:
                n = convert(input, NamedStream(sys.stdout, "<stdout>"), from_fmt, to_fmt,
                            task=task, scheme=scheme, to_scheme=to_scheme,
                            pos_column=pos_column, repair=repair)
            except OutputError:
                _discard_stdout()  # the write failed: no flush at exit either
                raise
        else:
            n = convert(input, output, from_fmt, to_fmt, task=task, scheme=scheme,
                        to_scheme=to_scheme, pos_column=pos_column, repair=repair, force=force)
        # the summary goes with the data's stream only when the data went to a file
        summary = (f"{n} sentences: {input} ({from_fmt}) -> "
                   f"{'<stdout>' if to_stdout else output} ({to_fmt})")
        if to_stdout:
            typer.echo(summary, err=True)
        else:
            _out(summary)


@app.command("info")
def info_cli(
    model: Annotated[Path, typer.Argument(metavar="CKPT",
                                          help="Checkpoint file, or an exported .onnx/.ts.",
                                          show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
    = False,
    trust_code: TrustOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Show a checkpoint's task, config, tag set, sizes, parameter count and best scores
    (also for a model written by `tagger export`).

    Example: tagger info runs/sample-cws/best.pt
    """
    from .checkpoint import load_checkpoint
    from .exported import exported_kind, load_exported
    from .report import checkpoint_info, checkpoint_summary

    with _user_errors(debug):
        ckpt = (load_exported(model, trust_code=trust_code)[0]
                if exported_kind(model) is not None else load_checkpoint(model))
        if as_json:
            _out(json.dumps(checkpoint_summary(ckpt, model), ensure_ascii=False, indent=2))
        else:
            _out(checkpoint_info(ckpt, model))


@app.command("export")
def export_cli(
    model: Annotated[Path, typer.Argument(metavar="CKPT", help="Checkpoint file (best.pt).",
                                          show_default=False)],
    format: Annotated[str, typer.Option(
        "--format", "-f", help="onnx (run by onnxruntime; needs pip install "
        "'bmes_tagger[onnx]') or torchscript.")] = "onnx",
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="File to write (default: beside the checkpoint, e.g. "
        "best.onnx, best.int8.onnx, best.ts).")] = None,
    quantize: Annotated[bool, typer.Option(
        "--quantize", help="Store LSTM and linear weights as int8 (dynamic quantisation).")]
    = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the output if it exists.")]
    = False,
    debug: DebugOpt = False,
) -> None:
    """Export a checkpoint's network to ONNX or TorchScript for deployment.

    The file carries the vocabularies, tags and config, so `tagger predict --model FILE` and
    `Tagger.load(FILE)` use it like the checkpoint (decoding runs in Python, identically).

    Example: tagger export runs/sample-cws/best.pt --format onnx --quantize
    """
    _needs_torch("tagger export")
    from .export import FORMATS, export_model

    _no_stdout(output, "--output", "a model file is binary")
    with _user_errors(debug, stop_signals=True):
        if format not in FORMATS:
            raise UsageError(f"--format: {format!r} is not an export format; choose "
                                  f"{' or '.join(FORMATS)}")
        try:
            path = export_model(model, output, format, quantize=quantize, force=force)
        except ValueError as exc:
            raise BmesTaggerError(str(exc)) from None
        size = path.stat().st_size / 1e6 if path.is_file() else 0.0
        _out(f"{path} ({format}{', int8 weights' if quantize else ''}, {size:.1f} MB)")


@app.command("plot")
def plot_cli(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR",
                                            help="Run directory (holds metrics.jsonl).",
                                            show_default=False)],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="PNG file (default: "
                                                "RUN_DIR/training.png).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the PNG if it exists.")]
    = False,
    debug: DebugOpt = False,
) -> None:
    """Plot training loss and dev F1 per evaluation to a PNG.

    Needs matplotlib (pip install 'bmes_tagger[plot]').

    Example: tagger plot runs/sample-cws
    """
    from .report import plot_run

    _no_stdout(output, "--output", "a PNG is binary")
    with _user_errors(debug, stop_signals=True):
        _out(plot_run(run_dir, output or run_dir / "training.png", force=force))


def _seed_list(first: str | None, rest: list[str]) -> list[int] | None:
    """``--seeds 1 2 3`` (click options take one value: the others arrive as extra
    arguments) or ``--seeds 1,2,3``."""
    if first is None:
        if rest:
            raise typer.BadParameter(f"unexpected extra arguments: {' '.join(rest)}")
        return None
    values = [v for item in [first, *rest] for v in item.split(",") if v]
    try:
        return [int(v) for v in values]
    except ValueError:
        raise typer.BadParameter(f"--seeds: expected integers, got {' '.join(values)}"
                                 ) from None


def format_seeds(summary: dict[str, Any], run_dir: Path) -> str:
    """Per-seed and mean ± sd scores of ``tagger train --seeds``."""
    splits = ["dev", *(["test"] if "test" in summary else [])]
    lines = [" ".join(["seed", *(f"{s + ' ' + k:>9}" for s in splits
                                 for k in ("P", "R", "F1"))])]
    for row in summary["per_seed"]:
        lines.append(" ".join([f"{row['seed']:>4}", *(f"{row[s].get(k, 0.0):>9.4f}" for s in splits
                                                      for k in ("precision", "recall", "f1"))]))
    for s in splits:
        m = summary[s]
        lines.append(f"{s}: P {m['precision']['mean']:.4f} ± {m['precision']['sd']:.4f}  "
                     f"R {m['recall']['mean']:.4f} ± {m['recall']['sd']:.4f}  "
                     f"F1 {m['f1']['mean']:.4f} ± {m['f1']['sd']:.4f}")
    if "refit_test" in summary:  # train.refit: each seed's refit.pt on the test set
        m = summary["refit_test"]
        lines.append(f"test, refit.pt: P {m['precision']['mean']:.4f} ± "
                     f"{m['precision']['sd']:.4f}  R {m['recall']['mean']:.4f} ± "
                     f"{m['recall']['sd']:.4f}  F1 {m['f1']['mean']:.4f} ± {m['f1']['sd']:.4f}")
    lines.append(f"best seed {summary['best_seed']} by dev F1: {run_dir / 'best.pt'}; all in "
                 f"{run_dir / 'seeds.json'}")
    return "\n".join(lines)


def format_scores(result: dict[str, Any], task: str, data: str, model: str) -> str:
    """Human-readable score report."""
    lines = [f"model {model}", f"data  {data}", "",
             f"precision {result['precision']:.4f}  recall {result['recall']:.4f}  "
             f"F1 {result['f1']:.4f}"]
    if task == "cws":
        lines.append(f"words: gold {result['gold_words']}  predicted {result['pred_words']}  "
                     f"correct {result['correct_words']}")
        if result.get("oov_rate") is not None:
            lines.append(f"OOV rate {_fraction(result['oov_rate'])}  OOV recall "
                         f"{_fraction(result['oov_recall'])}  IV recall "
                         f"{_fraction(result['iv_recall'])}")
    else:
        if task == "pos":
            lines.append(f"segmentation only: precision {result['seg_precision']:.4f}  recall "
                         f"{result['seg_recall']:.4f}  F1 {result['seg_f1']:.4f}")
        unit = "words" if task == "pos" else "entities"
        lines.append(f"{unit}: gold {result['gold_entities']}  predicted "
                     f"{result['pred_entities']}  correct {result['correct_entities']}")
        per_type = result.get("per_type") or {}
        if per_type:
            width = max(8, *(len(k) for k in per_type))
            kind = "POS" if task == "pos" else "type"
            lines += ["", f"{kind:<{width}}  precision  recall      F1  support"]
            for label, s in sorted(per_type.items()):
                lines.append(f"{label:<{width}}  {s['precision']:>9.4f}  {s['recall']:>6.4f}  "
                             f"{s['f1']:>6.4f}  {s['support']:>7}")
    return "\n".join(lines)


def _fraction(value: float | None) -> str:
    """Four decimals, or ``--`` where a figure is undefined (as the SIGHAN scorer prints)."""
    return "--" if value is None else f"{value:.4f}"


class _Process:
    """What :func:`main` knows about the process that an in-process caller (a test's
    ``CliRunner``, a notebook) does not: it ends when the command does."""

    ends_with_command = False
    interrupt_reported = False


_PROCESS = _Process()


def _interrupted(code: int) -> typer.Exit:
    """The exit of a command that has said it was interrupted."""
    _PROCESS.interrupt_reported = True
    return typer.Exit(code)


def _log_line(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


def main() -> None:
    """The command line (:func:`bmes_tagger.entry.main`, the entry point of ``tagger`` and
    ``python -m bmes_tagger``, calls it once it is imported).

    What click prints itself (``--help``, usage errors) fails outside the commands'
    handlers: a reader that went away becomes 141 here too (click exits 1 and swaps in its
    ``PacifyFlushWrapper``), any other write error one line instead of a traceback."""
    # NumPy's BLAS starts a thread per core at import, which costs a one-line predict CPU
    # time and, on a busy machine, wall time; the command line uses none of it (its thread
    # policy is --threads / train.threads, 1 by default). A user's own setting wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    _PROCESS.ends_with_command = True
    try:
        _main()
    except SystemExit as exit_:
        if exit_.code == 130 and not _PROCESS.interrupt_reported:
            # a Ctrl-C before a command's handlers were in place (while it imports):
            # typer turns it into a silent exit 130
            _set_signal(signal.SIGINT, signal.SIG_IGN)
            _log_line("interrupted")
        raise
    finally:
        # the command is over: a late signal would only interrupt the interpreter's own
        # shutdown (atexit callbacks of tqdm and torch) with a traceback, or, once the
        # interpreter has put the default handlers back, end it without a word; an ignored
        # signal stays ignored through the shutdown
        _ignore_stop_signals()
        # CPython remembers a KeyboardInterrupt that left code run by exec() or eval() of a
        # string (namedtuple, dataclass and typing code an import generates), even when a
        # handler caught it later, and then ends the process by SIGINT instead of with its
        # exit status (-2, not 130). Running a string that succeeds clears that flag.
        exec("None")  # noqa: S102 - a constant, to reset the flag above


def _main() -> None:
    try:
        app(prog_name="tagger")
    except SystemExit as exit_:
        # by name: typer ships its own copy of click, and either may be the one in use
        if exit_.code == 1 and type(sys.stdout).__name__ == "PacifyFlushWrapper":
            _discard_stdout()
            raise SystemExit(141) from None
        raise
    except OSError as exc:
        _discard_stdout()
        typer.echo(f"error: <stdout>: {exc.strerror or exc}", err=True)
        raise SystemExit(1) from None
