"""The ``lstmkit`` command: parse arguments, build the config, call ``lstmkit.tasks.runner``, print.

No logic lives here. Argument and config errors exit with status 2 before any work starts; data
and run-directory problems exit with status 1; both print one message that says what to fix.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from lstmkit._fileio import describe_os_error
from lstmkit.tasks import ConfigError, TaskError, runner

app = typer.Typer(
    name="lstmkit",
    help="Train, evaluate and sample LSTM models on registered tasks. `lstmkit train` runs the default: "
    "a character-level language model on Shakespeare.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help text: config sections are written [model], which rich would eat
)


class Split(enum.StrEnum):
    train = "train"
    val = "val"
    test = "test"


def _fail(error: Exception, *, usage: str | None = None) -> NoReturn:
    """Print the error; exit 2 for a bad argument (naming the command's --help), 1 otherwise. A file-system
    error (read-only, full, a path under a regular file, a refused link) is one line: the path, the problem."""
    typer.echo(f"Error: {describe_os_error(error) if isinstance(error, OSError) else error}", err=True)
    if usage:
        typer.echo(f"Try 'lstmkit {usage} --help' for help.", err=True)
    raise typer.Exit(2 if usage else 1)


@app.command()
def train(
    task: Annotated[str, typer.Option(help="The task to run; `lstmkit tasks` lists them.")] = "charlm",
    config: Annotated[
        Path | None,
        typer.Option(help="A TOML file of [model], [data], [train] keys, laid over the task's defaults."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="SECTION.KEY=VALUE",
            help="Override one config key, after --config; repeatable. Values are TOML literals or bare "
            "words: --set train.lr=3e-4 --set model.cell=gru --set data.text=my.txt --set train.max_steps=none. "
            "Unknown keys and ill-typed values are rejected by name before anything runs.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="The run directory (default: runs/TASK-DATE-TIME). The same directory and settings again "
                     "resume an unfinished run."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (the same as --set train.seed=N).")] = None,
    show_config: Annotated[
        bool, typer.Option("--show-config", help="Print every config key with its value, type and the reason for its "
                           "default (after --config, --set and --seed), and exit without training.")
    ] = False,
) -> None:
    """Train a task into a run directory, then print its validation metrics (and a sample, for text).

    The run directory receives config.toml (the resolved config), model.safetensors, the tokenizer
    or scaler state, metrics.csv, summary.json, curves.png, run.json (the version stamp) and
    checkpoints/. `lstmkit train` alone trains the character-level Shakespeare model in under
    10 minutes on 2 CPU cores.
    """
    if show_config:
        _show_config(task, config, set_ or [], seed, usage="train")
        return
    try:
        cfg = runner.build_config(task, config, set_ or [], seed)
    except (ValueError, TaskError, OSError) as e:
        _fail(e, usage="train")
    try:
        result = runner.train(task, cfg, out)
    except ConfigError as e:
        _fail(e, usage="train")
    except (TaskError, OSError) as e:
        _fail(e)
    typer.echo(f"run directory: {result.run_dir}{' (resumed)' if result.resumed else ''}")
    for line in result.lines:
        typer.echo(line)
    typer.echo(f"wall time: {result.metrics['wall_seconds']:.0f} s")
    if "sample" in result.metrics:
        typer.echo("sample:")
        typer.echo(result.metrics["sample"])


@app.command("select")
def select_(
    task: Annotated[str, typer.Option(help="The task whose candidate settings to choose among: classify or forecast.")],
    config: Annotated[
        Path | None, typer.Option(help="A TOML file laid over the task's defaults, under every candidate.")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="SECTION.KEY=VALUE", help="Override one config key under every candidate, as "
                     "for `lstmkit train` (the data: --set data.csv=FILE ...)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="The selection directory (default: runs/select-TASK-DATE-TIME): selection.json and "
                     "candidates/NAME/, one run directory per candidate. The same directory and settings again "
                     "resume the selection."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed of every candidate (--set train.seed=N).")] = None,
    candidates: Annotated[
        str | None,
        typer.Option(help="Only these of the task's candidates, comma-separated (e.g. 'biLSTM,LSTM-FCN'); "
                     "default: all of them."),
    ] = None,
) -> None:
    """Train each of the task's candidate settings as a run of its own and keep the lowest validation loss.

    classify: the biLSTM, the LSTM-FCN and the ALSTM-FCN; below 100 training cases each is a committee of
    5 fold models judged by its cross-validation loss, and each again with first differences, which must win
    by 10% and 0.01 nats. forecast: the LSTM with and without the AR skip, each
    reading the window as it is and level-free. The test split is scored in every run but never compared;
    the chosen run directory is what `lstmkit evaluate`, `export` and `compress` take.
    """
    from lstmkit.tasks import selection  # the selection module loads only when the command runs

    try:
        cfg = runner.build_config(task, config, set_ or [], seed)
    except (ValueError, TaskError, OSError) as e:
        _fail(e, usage="select")
    try:
        only = [c.strip() for c in candidates.split(",") if c.strip()] if candidates else None
        result = selection.select(task, cfg, out, only=only, progress=typer.echo)
    except ConfigError as e:
        _fail(e, usage="select")
    except (TaskError, OSError) as e:
        _fail(e)
    chosen = result.chosen
    typer.echo(f"chosen: {chosen.name}, by {result.rule}")
    typer.echo(f"run directory: {chosen.run_dir}")
    for line in chosen.lines:
        typer.echo(line)
    typer.echo(f"selection: {result.out / selection.SELECTION}")


def _show_config(task: str, config: Path | None, overrides: list[str], seed: int | None, *, usage: str) -> None:
    try:
        lines = runner.describe_config(task, config, overrides, seed)
    except (ValueError, TaskError, OSError) as e:
        _fail(e, usage=usage)
    for line in lines:
        typer.echo(line)


@app.command("config")
def config_(
    task: Annotated[str, typer.Argument(help="The task; `lstmkit tasks` lists them.")] = "charlm",
    config: Annotated[Path | None, typer.Option(help="A TOML file laid over the task's defaults.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="SECTION.KEY=VALUE", help="Override one config key, as for `lstmkit train`."),
    ] = None,
) -> None:
    """Print every config key of a task: its value, type, the class default where the task differs, and why."""
    _show_config(task, config, set_ or [], None, usage="config")


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `lstmkit train`.")],
    split: Annotated[Split, typer.Option(help="The split to score.")] = Split.val,
) -> None:
    """Score a trained run on a split, loading the model and its state from the run directory only."""
    try:
        _, lines = runner.evaluate(run_dir, split.value)
    except (TaskError, OSError) as e:
        _fail(e)
    for line in lines:
        typer.echo(line)


@app.command()
def generate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory of a text task (charlm, wordlm).")],
    prompt: Annotated[str, typer.Option(help="Text to continue; empty starts at a line break.")] = "",
    length: Annotated[
        int, typer.Option(min=0, max=1_000_000, help="How many tokens (characters or words) to generate, at most 10^6.")
    ] = 500,
    temperature: Annotated[
        float, typer.Option(min=0.0, help="Divides the logits: < 1 is safer, > 1 wilder; 0 always takes the likeliest.")
    ] = 0.8,
    top_k: Annotated[int, typer.Option(min=0, help="Sample among the K likeliest tokens only; 0 keeps all.")] = 0,
    seed: Annotated[int, typer.Option(min=0, help="Random seed of the sampling.")] = 0,
) -> None:
    """Continue a prompt with a trained text model, loading everything from the run directory."""
    try:
        result = runner.generate(run_dir, prompt=prompt, length=length, temperature=temperature, top_k=top_k, seed=seed)
    except (TaskError, OSError) as e:
        _fail(e)
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(result.text)


@app.command("tasks")
def list_tasks() -> None:
    """List the registered tasks, their data source and whether the data is available here."""
    for info in runner.list_tasks():
        typer.echo(f"{info.name}: {info.summary}")
        typer.echo(f"    data: {info.source}")
        typer.echo(f"    available: {'yes' if info.available else 'no'}")
        if info.note:
            typer.echo("    " + info.note.replace("\n", "\n    "))


@app.command("diagnose")
def diagnose(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(metavar="RUN_DIR", help="Run directories of one long-range task (adding, temporal-order, "
                       "copy); several are compared on one input."),
    ],
    length: Annotated[
        int | None, typer.Option(min=2, help="Steps T of the input (default: the first run's data.length).")
    ] = None,
    batch: Annotated[int, typer.Option(min=1, help="Sequences in the input; the curves are their means.")] = 32,
    seed: Annotated[int, typer.Option(min=0, help="Random seed of the input sequences.")] = 0,
    init: Annotated[
        bool, typer.Option("--init", help="Diagnose the models as initialised (config and seed), not as trained.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(help="The PNG to write (default RUN_DIR/gradient_flow.png; required with several runs); "
                     "the numbers go to the same name with .json."),
    ] = None,
) -> None:
    """Plot how far back the gradient of the loss at the last step reaches: ||dL/dh_t|| and, for an
    LSTM, ||dL/dc_t|| for every step t, for each run on the same input. See lstmkit.diagnostics."""
    from lstmkit.diagnostics import diagnose_runs  # matplotlib and the replay load only for this command

    try:
        result = diagnose_runs(run_dirs, length=length, batch_size=batch, seed=seed, init=init, out=out)
    except ValueError as e:
        _fail(e, usage="diagnose")
    except (TaskError, OSError) as e:
        _fail(e)
    for line in result.lines:
        typer.echo(line)


class Origin(enum.StrEnum):
    end = "end"
    test = "test"


@app.command("forecast")
def forecast(
    run_dir: Annotated[Path, typer.Argument(help="A run directory of the forecast task.")],
    horizon: Annotated[int, typer.Option(min=1, help="Steps to forecast.")] = 12,
    origin: Annotated[
        Origin,
        typer.Option(help="end: the steps after the data; test: from the test split's start, beside the held-out "
                     "values."),
    ] = Origin.end,
    out: Annotated[Path | None, typer.Option(help="The PNG (default: RUN_DIR/forecast-ORIGIN-hH.png).")] = None,
) -> None:
    """Forecast HORIZON steps with a trained forecast run; print them and plot them with the history.

    Up to the run's data.horizon the forecast is direct; beyond it the model's own forecasts are fed
    back (recursive).
    """
    from lstmkit.tasks.forecast import forecast_run

    try:
        result = forecast_run(run_dir, horizon, origin=origin.value, out=out)
    except (TaskError, OSError) as e:
        _fail(e)
    for line in result.lines:
        typer.echo(line)


@app.command("predict")
def predict(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run directory of moving-digits.")],
    source: Annotated[
        Path,
        typer.Argument(metavar="FRAMES", help="A .npy array (T, H, W), uint8 or floats in [0, 1], or a folder of "
                       "PNG frames taken in name order; light digits on a dark background."),
    ],
    frames: Annotated[int | None, typer.Option(min=1, help="Frames to predict (default: the run's "
                                               "data.output_frames; more are predicted from predictions).")] = None,
    out: Annotated[Path | None, typer.Option(help="The folder for the PNGs and the GIF (default: "
                                             "RUN_DIR/predictions/NAME).")] = None,
) -> None:
    """Continue your own frame sequence with a moving-digits run: PNGs of the predicted frames and a GIF."""
    from lstmkit.tasks.moving_digits.predict import predict_run

    try:
        result = predict_run(run_dir, source, frames=frames, out=out)
    except (TaskError, OSError) as e:
        _fail(e)
    for line in result.lines:
        typer.echo(line)


@app.command("recognize")
def recognize(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR",
                                            help="A run directory of ctc-speech, ctc-ocr or handwriting.")],
    files: Annotated[
        list[Path],
        typer.Argument(metavar="FILE", help="Mono WAV files at the run's sample rate (ctc-speech), or images "
                       "of one text line each, dark on light or light on dark (ctc-ocr: PNG), or pen strokes "
                       "(handwriting: .csv with columns x,y,stroke; InkML .inkml; IAM-OnDB .xml)."),
    ],
) -> None:
    """Transcribe your files with a trained CTC run (prefix beam search); prints FILE<TAB>TRANSCRIPT per file."""
    from lstmkit.tasks.ctc import recognize_files

    try:
        lines = recognize_files(run_dir, files)
    except (TaskError, OSError) as e:
        _fail(e)
    for line in lines:
        typer.echo(line)


@app.command("write")
def write(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run directory of handwriting-gen.")],
    texts: Annotated[list[str] | None, typer.Argument(metavar="TEXT", help="Lines to write, one file pair "
                                                      "each.")] = None,
    texts_file: Annotated[Path | None, typer.Option("--texts", help="A UTF-8 file of lines to write, one a line "
                                                    "(after any TEXT arguments).")] = None,
    out: Annotated[Path | None, typer.Option(help="The folder for line-N.svg and line-N.csv (default: "
                                             "RUN_DIR/written).")] = None,
    bias: Annotated[float, typer.Option(min=0.0, help="Sampling bias (Graves 2013, eqs. 61-62): 0 samples the "
                                        "model as trained; larger is neater and less varied.")] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed of the first line's sampling; the next lines use SEED + 1, ...")] = 0,
    max_points: Annotated[int, typer.Option(min=1, help="Stop a line after this many pen points.")] = 1500,
    judge: Annotated[Path | None, typer.Option(help="A handwriting recognition run that reads the lines back: "
                                               "prints each transcript and the character error rate.")] = None,
    style: Annotated[Path | None, typer.Option(help="Pen strokes to continue the hand of (.csv x,y,stroke; "
                                               ".inkml; IAM-OnDB .xml): primed sampling.")] = None,
    style_text: Annotated[str, typer.Option(help="What the --style strokes say (needed by a text-conditioned "
                                            "run).")] = "",
) -> None:
    """Write lines of text in handwriting with a trained handwriting-gen run: SVG and CSV (x,y,stroke) per line."""
    from lstmkit.tasks.handwriting.command import write_lines

    try:
        lines = write_lines(run_dir, texts or [], texts_file=texts_file, out=out, bias=bias, seed=seed,
                            max_points=max_points, judge=judge, style=style, style_text=style_text)  # fmt: skip
    except (TaskError, OSError) as e:
        _fail(e)
    for line in lines:
        typer.echo(line)


@app.command("translate")
def translate(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run directory of g2p or seq2seq.")],
    texts: Annotated[
        list[str] | None,
        typer.Argument(metavar="TEXT", help="Inputs to translate; none (or -) reads standard input, one a line."),
    ] = None,
    n_best: Annotated[int, typer.Option(min=1, help="Outputs to print per input, best first.")] = 5,
    beam: Annotated[int | None, typer.Option(min=1, help="Beam width (default: the run's model.beam_size, "
                                             "at least --n-best).")] = None,
    attention: Annotated[
        Path | None, typer.Option(help="Draw the best output's attention matrix to this PNG (NAME-1.png, ... "
                                  "for several inputs).")
    ] = None,
) -> None:
    """Translate with a trained sequence-to-sequence run: prints INPUT<TAB>RANK<TAB>OUTPUT<TAB>LOG-PROBABILITY."""
    import sys

    from lstmkit.tasks.seq2seq.translate import translate_run

    if not texts or texts == ["-"]:
        texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    try:
        results = translate_run(run_dir, texts, n_best=n_best, beam_size=beam, attention=attention)
    except ValueError as e:
        _fail(e, usage="translate")
    except TaskError as e:
        _fail(e)
    for t in results:
        for note in t.notes:
            typer.echo(f"note: {note}", err=True)
        for line in t.lines():
            typer.echo(line)
        if t.attention_png is not None:
            typer.echo(f"attention: {t.attention_png}", err=True)


class ExportFormat(enum.StrEnum):
    onnx = "onnx"


@app.command("export")
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `lstmkit train`.")],
    format_: Annotated[ExportFormat, typer.Option("--format", help="The file format.")] = ExportFormat.onnx,
    out: Annotated[Path | None, typer.Option(help="The file to write (default: RUN_DIR/model.onnx).")] = None,
    lengths: Annotated[
        bool, typer.Option("--lengths/--no-lengths", help="Add a `lengths` (B,) input that masks padded steps.")
    ] = False,
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Check the file in onnxruntime against the PyTorch model.")
    ] = True,
    int8: Annotated[
        bool, typer.Option("--int8", help="Also write model.int8.onnx: onnxruntime's dynamic int8 quantisation "
                           "(int8 LSTM and MatMul weights), checked against the float model.")
    ] = False,
    per_channel: Annotated[
        bool, typer.Option("--per-channel/--per-tensor", help="With --int8: one scale per output row or per tensor.")
    ] = True,
    reduce_range: Annotated[
        bool, typer.Option("--reduce-range/--full-range", help="With --int8: 7-bit weight values (right on CPUs "
                           "without VNNI, whose int16 sums saturate) or 8-bit.")
    ] = True,
) -> None:
    """Export a trained run's model (embedding, LSTM, head; tokenizer in the metadata) for onnxruntime.

    Needs the optional packages: pip install "lstmkit[onnx]". See docs/deployment.md.
    """
    from lstmkit.export.rundir import export_run  # the export stack loads only for this command

    try:
        result = export_run(run_dir, format=format_.value, out=out, lengths=lengths, verify=verify, int8=int8,
                            per_channel=per_channel, reduce_range=reduce_range)
    except ValueError as e:
        _fail(e, usage="export")
    except (TaskError, OSError) as e:
        _fail(e)
    for line in result.describe():
        typer.echo(line)


# -- lstmkit compress -----------------------------------------------------------------------------------
compress_app = typer.Typer(
    help="Compress a trained run into a new run directory (with compression.json): quantize, prune, distill, "
    "lowrank, circulant. Every other command accepts the result. See docs/compression.md.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(compress_app, name="compress")

_RunDir = Annotated[
    Path, typer.Argument(metavar="RUN_DIR", help="A run directory written by `lstmkit train` (or `lstmkit compress`).")
]
_Out = Annotated[Path, typer.Option(help="The new run directory to write (must not exist or be empty).")]
_Splits = Annotated[
    list[Split] | None, typer.Option("--split", help="Split(s) to score before and after; repeatable (default: val).")
]
_Repeats = Annotated[int, typer.Option(help="Timed forward calls per model for the latency.")]
_Finetune = Annotated[int, typer.Option(help="Fine-tuning steps after compressing (per round when pruning); 0: none.")]
_Lr = Annotated[float | None, typer.Option(help="Fine-tuning learning rate (default: the run's train.lr / 10).")]


def _compress(method: str, fn, run_dir: Path, out: Path, splits: list[Split] | None, **options) -> None:
    """Call the library, turn its errors into exit statuses, print the report."""
    from lstmkit.compress.report import describe

    try:
        report = fn(run_dir, out, splits=[s.value for s in splits or [Split.val]], **options)
    except ValueError as e:
        _fail(e, usage=f"compress {method}")
    except (TaskError, OSError) as e:
        _fail(e)
    typer.echo(f"run directory: {out}")
    for line in describe(report):
        typer.echo(line)


@compress_app.command("quantize")
def compress_quantize(
    run_dir: _RunDir,
    out: _Out,
    bits: Annotated[int, typer.Option(help="Bits per weight, 2 to 8 (4 packs two a byte).")] = 8,
    per_channel: Annotated[
        bool, typer.Option("--per-channel/--per-tensor", help="One scale per output row (gate row) or per tensor.")
    ] = True,
    compare_torch: Annotated[
        bool, typer.Option("--compare-torch", help="Also score torch.ao dynamic int8 on a torch.nn twin (LM runs).")
    ] = False,
    split: _Splits = None,
    repeats: _Repeats = 20,
) -> None:
    """Uniform-affine quantisation of every weight matrix; the model runs from the stored integers."""
    from lstmkit.compress import quantize_run

    _compress("quantize", quantize_run, run_dir, out, split, bits=bits, per_channel=per_channel,
              compare_torch=compare_torch, repeats=repeats)  # fmt: skip


class PruneScope(enum.StrEnum):
    layer = "layer"
    global_ = "global"


@compress_app.command("prune")
def compress_prune(
    run_dir: _RunDir,
    out: _Out,
    sparsity: Annotated[
        float, typer.Option(help="Share of weights to remove, in [0, 1) (with --structured: of hidden units).")
    ],
    structured: Annotated[
        bool, typer.Option("--structured", help="Remove whole hidden units: H shrinks to ceil(H (1 - sparsity)).")
    ] = False,
    scope: Annotated[PruneScope, typer.Option(help="One threshold per tensor or one for all.")] = PruneScope.layer,
    steps: Annotated[int, typer.Option(help="Rounds of prune then fine-tune up to the sparsity (unstructured).")] = 1,
    finetune_steps: _Finetune = 0,
    lr: _Lr = None,
    sparse: Annotated[
        bool, typer.Option("--sparse/--dense", help="Store pruned matrices as kept values + a bitmask where smaller "
                           "(default), or dense with zeros.")
    ] = True,
    split: _Splits = None,
    repeats: _Repeats = 20,
) -> None:
    """Magnitude pruning: unstructured (masks, exact sparsity) or structured (a smaller hidden size)."""
    from lstmkit.compress import prune_run

    _compress("prune", prune_run, run_dir, out, split, sparsity=sparsity, structured=structured, scope=scope.value,
              steps=steps, finetune_steps=finetune_steps, lr_=lr, storage="sparse" if sparse else "dense",
              repeats=repeats)  # fmt: skip


@compress_app.command("distill")
def compress_distill(
    run_dir: _RunDir,
    out: _Out,
    hidden_size: Annotated[int, typer.Option(help="The student's hidden size (it must be smaller than the teacher).")],
    num_layers: Annotated[int | None, typer.Option(help="The student's layers (default: the teacher's).")] = None,
    alpha: Annotated[float, typer.Option(help="Weight of the hard-label loss in [0, 1]; 1 ignores the teacher.")] = 0.5,
    temperature: Annotated[float, typer.Option(help="Softening temperature T > 0.")] = 2.0,
    steps: Annotated[int | None, typer.Option(help="Training steps (default: the teacher's train.max_steps).")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="SECTION.KEY=VALUE", help="Override a key of the student's config; repeatable."),
    ] = None,
    split: _Splits = None,
    repeats: _Repeats = 20,
) -> None:
    """Train a smaller student from the run's model: alpha CE + (1 - alpha) T^2 KL(teacher || student)."""
    from lstmkit.compress import distill_run

    _compress("distill", distill_run, run_dir, out, split, hidden_size=hidden_size, num_layers=num_layers,
              alpha=alpha, temperature=temperature, steps=steps, overrides=set_ or [], repeats=repeats)  # fmt: skip


@compress_app.command("lowrank")
def compress_lowrank(
    run_dir: _RunDir,
    out: _Out,
    rank: Annotated[int | None, typer.Option(help="Rank of every gate matrix's factors.")] = None,
    energy: Annotated[float | None, typer.Option(help="Or: the share of sum(sigma^2) to keep, in (0, 1].")] = None,
    finetune_steps: _Finetune = 0,
    lr: _Lr = None,
    split: _Splits = None,
    repeats: _Repeats = 20,
) -> None:
    """Truncated-SVD factorisation of the gate matrices, then optional fine-tuning."""
    from lstmkit.compress import lowrank_run

    _compress("lowrank", lowrank_run, run_dir, out, split, rank=rank, energy=energy, finetune_steps=finetune_steps,
              lr_=lr, repeats=repeats)  # fmt: skip


class Product(enum.StrEnum):
    dense = "dense"
    fft = "fft"


@compress_app.command("circulant")
def compress_circulant(
    run_dir: _RunDir,
    out: _Out,
    block: Annotated[int, typer.Option(help="K: the size of the K x K circulant blocks (K times fewer weights); it "
                                       "must divide the sizes of every gate matrix.")],
    others: Annotated[
        bool, typer.Option("--others/--gates-only", help="Also the head and projection matrices whose sizes K divides.")
    ] = True,
    product: Annotated[
        Product, typer.Option(help="How the written model multiplies: the expanded matrix or the FFT.")
    ] = Product.dense,
    finetune_steps: _Finetune = 0,
    lr: _Lr = None,
    split: _Splits = None,
    repeats: _Repeats = 20,
) -> None:
    """Block-circulant weight matrices (CirCNN): one length-K vector per K x K block, FFT products."""
    from lstmkit.compress import circulant_run

    _compress("circulant", circulant_run, run_dir, out, split, block=block, others=others, product=product.value,
              finetune_steps=finetune_steps, lr_=lr, repeats=repeats)  # fmt: skip


def main() -> None:
    app(prog_name="lstmkit")
