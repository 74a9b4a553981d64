"""The training loop: ``fit``, which reads top to bottom, and ``evaluate``.

A task plugs in through a step function (``lstmkit.train.steps``); the optimiser and schedule
come from ``lstmkit.train.optim`` and the reports (``metrics.csv``, TensorBoard, the progress bar,
the hooks' records) from ``lstmkit.train.logs``.

Everything that shapes the numbers (weights, optimiser moments, lr schedule, RNG states, the
carried hidden state, the position in the epoch, early-stopping bookkeeping) goes into each
checkpoint, so that a run resumed from one produces the same losses as a run never stopped.

Launched by ``torchrun``, ``fit`` trains data-parallel with ``DistributedDataParallel``; the
policy (global batches split among the ranks, rank-0-only writes, errors raised on every rank)
lives in ``lstmkit.train.distributed`` and docs/distributed.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lstmkit.formats.integrity import save_model_file
from lstmkit.train import distributed
from lstmkit.train.checkpoint import latest_intact_checkpoint, load_checkpoint, save_checkpoint
from lstmkit.train.config import Config
from lstmkit.train.logs import EpochLog, MetricsCsv, StepLog, open_tensorboard, progress_bar
from lstmkit.train.optim import make_optimizer, make_scheduler, planned_steps
from lstmkit.train.seed import capture_rng_state, restore_rng_state
from lstmkit.train.steps import StepFn


@dataclasses.dataclass
class FitResult:
    steps: int
    history: list[EpochLog]
    best_val_loss: float | None
    best_epoch: int | None
    stopped_early: bool


@dataclasses.dataclass
class _Progress:
    """The loop's counters; saved in every checkpoint."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of ``epoch`` already trained on
    epoch_loss: float = 0.0  # sum of loss * items over the epoch's finite steps
    epoch_items: int = 0
    window_loss: float = 0.0  # the same since the last metrics.csv row
    window_items: int = 0
    nonfinite: int = 0  # consecutive skipped steps
    best_val_loss: float | None = None
    best_epoch: int | None = None
    bad_evals: int = 0  # evaluations since the last improvement
    stopped_early: bool = False
    elapsed_s: float = 0.0  # training wall-clock time of earlier calls, for train.max_minutes
    history: list[dict] = dataclasses.field(default_factory=list)


# -- helpers -----------------------------------------------------------------------------------------
def _detach(state: Any) -> Any:
    """Cut the graph at a chunk boundary (truncated BPTT) but keep the values."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    return type(state)(_detach(s) for s in state)


def _set_epoch(data: Any, epoch: int) -> None:
    """Tell samplers which epoch this is (``BucketBatchSampler``, ``DistributedSampler``)."""
    for obj in (data, getattr(data, "batch_sampler", None), getattr(data, "sampler", None)):
        if hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)


def _snapshot(model: nn.Module, averages: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """A copy of the model's state; with ``averages`` (``train.ema_decay``), those in place of the parameters."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if averages is not None:
        state.update({k: v.clone() for k, v in averages.items()})
    return state


def _update_averages(averages: dict[str, Tensor], model: nn.Module, decay: float, step: int) -> None:
    """One step of the weights' exponential moving average (``train.ema_decay``): ``d * average + (1 - d) *
    weight`` with ``d = min(decay, (1 + step) / (10 + step))``, step counted from 0."""
    d = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for name, p in model.named_parameters(remove_duplicate=False):
            averages[name].mul_(d).add_(p.detach() * (1 - d))


@contextlib.contextmanager
def _averaged_weights(model: nn.Module, averages: dict[str, Tensor] | None) -> Iterator[None]:
    """Run the body with the averaged parameters in the model (nothing changes without averages)."""
    if averages is None:
        yield
        return
    params = dict(model.named_parameters(remove_duplicate=False))
    saved = {k: p.detach().clone() for k, p in params.items()}
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(averages[k])
    try:
        yield
    finally:
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(saved[k])


def evaluate(model: nn.Module, data: Iterable, step: StepFn, *, stateful: bool = False) -> float:
    """Item-weighted mean loss of ``step`` over ``data``, in eval mode and without gradients.

    ``stateful`` carries the state across batches (for contiguous ``TokenStreamBatcher`` chunks).
    """
    was_training = model.training
    model.eval()
    total, items, state = 0.0, 0, None
    with torch.no_grad():
        for batch in data:
            loss, new_state, n = step(model, batch, state if stateful else None)
            state = new_state
            total += loss.item() * n
            items += n
    model.train(was_training)
    if items == 0:
        raise ValueError("evaluation data yielded no items")
    return total / items


def _with_last(batches: Iterable) -> Iterator[tuple[Any, bool]]:
    """``(batch, is_last)``: one batch of look-ahead, so that a gradient-accumulation group can
    close on the last batch of an epoch even when the data has no ``len``."""
    it = iter(batches)
    try:
        current = next(it)
    except StopIteration:
        return
    for upcoming in it:
        yield current, False
        current = upcoming
    yield current, True


class _DDP(nn.parallel.DistributedDataParallel):
    """``DistributedDataParallel`` that lets step functions read the wrapped model's attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


# -- the loop ----------------------------------------------------------------------------------------
def fit(
    model: nn.Module,
    train_data: Iterable,
    step: StepFn,
    *,
    config: Config,
    out_dir: str | Path,
    val_data: Iterable | None = None,
    on_step: Callable[[StepLog], None] | None = None,
    on_epoch_end: Callable[[EpochLog], None] | None = None,
    resume: bool = True,
) -> FitResult:
    """Train ``model`` on ``train_data`` with AdamW, clipping, an lr schedule and early stopping.

    Per optimiser step: run ``step`` on ``train.accumulate`` consecutive batches (from the carried
    state, detached, when ``train.stateful``; from None otherwise), summing the gradients of their
    mean loss; skip the update if a loss or the gradient norm is non-finite (failing after
    ``train.max_nonfinite`` in a row), clip the global gradient norm, step AdamW and the schedule.
    Per epoch: evaluate on ``val_data``, update early stopping (which needs ``val_data``),
    checkpoint. At the end the best
    weights by validation loss are restored (when there was validation data) and written to
    ``out_dir/model.safetensors``. With ``train.ema_decay`` > 0 an exponential moving average of the
    parameters is kept after every optimiser step (in the checkpoints too); validation, the best
    weights and the final model are the average's, while the optimiser goes on training the raw weights.

    Launched by ``torchrun`` (``WORLD_SIZE`` > 1), the same call trains data-parallel: it joins
    the process group (``lstmkit.train.distributed``), wraps the model in
    ``DistributedDataParallel``, and gives each rank its contiguous share of every global batch
    (``data.batch_size`` is global and must be divisible by the world size). Rank 0 alone logs,
    evaluates and writes files; every rank resumes from rank 0's newest checkpoint, whose carried
    hidden state is all ranks' states side by side, the state of a single-process run.
    ``on_step`` and ``on_epoch_end`` run on every rank, with the losses of the global batch.

    Args:
        train_data: an iterable of batches, iterated once per epoch (a ``DataLoader``, a
            ``TokenStreamBatcher``, a list ...). With a sampler that has ``set_epoch`` it is called.
        step: ``step(model, batch, state) -> (loss, state, items)``, see ``lstmkit.train.steps``. A
            step for independent batches ignores ``state`` (or set ``train.stateful = false``).
        config: the run's config; ``config.train`` drives the loop and the whole is saved with
            each checkpoint.
        out_dir: receives ``metrics.csv``, ``checkpoints/`` and ``model.safetensors``.
        on_step, on_epoch_end: plain callables, called with a :class:`StepLog` / :class:`EpochLog`.
        resume: continue from the newest checkpoint in ``out_dir`` if there is one.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be a lstmkit.train.Config, got {type(config).__name__}")
    cfg = config.train
    launch = distributed.detect()  # None when this process trains alone
    # Before any rendezvous, so that every rank of a launch the batch does not fit stops at once.
    distributed.check_batch_size(config.data.batch_size, launch.world_size if launch else distributed.world_size())
    distributed.setup()  # joins the launch's process group (a script may also have started one itself)
    world, rank = distributed.world_size(), distributed.rank()
    main = rank == 0
    if world > 1:
        train_data = distributed.shard_data(train_data, rank, world, seed=cfg.seed)
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"

    def find_checkpoint() -> str | None:
        out_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            if (ckpt_dir / "index.json").exists():
                raise ValueError(f"{out_dir} already holds checkpoints; pass resume=True or use a new out_dir")
            return None
        # The newest checkpoint that reads back whole; a damaged one is set aside (kept), and we say so.
        newest, notes = latest_intact_checkpoint(ckpt_dir, config_like=config)
        for note in notes:
            print(f"lstmkit: {note}", file=sys.stderr)
        return None if newest is None else str(newest)

    # Rank 0's newest checkpoint is the one every rank resumes from (a shared file system, or the same
    # files at the same path on every machine).
    latest = distributed.on_main(find_checkpoint, "look for checkpoints")

    # Wall-clock time counts across resumes (``elapsed_s`` of earlier calls is added once resumed). With
    # several ranks every one follows rank 0's clock, shared at every step, so that all stop together.
    started, elapsed_before = time.perf_counter(), 0.0
    shared_elapsed = 0.0

    def elapsed() -> float:
        if world > 1:
            return shared_elapsed
        return elapsed_before + time.perf_counter() - started

    def time_used() -> float:
        """The share of ``train.max_minutes`` spent so far."""
        return elapsed() / (60 * cfg.max_minutes)

    k = cfg.accumulate
    total_steps = planned_steps(train_data, cfg)
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg, total_steps, time_used if cfg.max_minutes is not None else None)
    per_step_schedule = not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)

    # Start fresh, or put back everything a checkpoint holds.
    run, hidden, best_weights, epoch_rng, resumed_rng = _Progress(), None, None, None, None
    # train.ema_decay: the parameters' moving average, started at the initial weights; keyed like state_dict, with
    # a tied weight under each of its names, so that a snapshot with the averages loads back whole
    averages = None
    if cfg.ema_decay > 0:
        averages = {k: p.detach().clone() for k, p in model.named_parameters(remove_duplicate=False)}
    if latest is not None:
        error = None
        try:
            ckpt = load_checkpoint(latest, model=model, optimizer=optimizer, scheduler=scheduler, config_like=config)
        except Exception as e:
            error = e
        distributed.agree(error, f"load the checkpoint {latest}")
        run = _Progress(**ckpt.state["progress"])
        hidden, best_weights = ckpt.state["hidden"], ckpt.state["best_weights"]
        epoch_rng, resumed_rng = ckpt.state["epoch_rng"], ckpt.state["rng"]
        if averages is not None:
            if ckpt.state.get("averages") is None:
                raise ValueError(f"train.ema_decay is {cfg.ema_decay} but the checkpoint {latest} holds no weight "
                                 "average; resume with the run's own train.ema_decay or start a new out_dir")
            averages = ckpt.state["averages"]
        if world > 1 and hidden is not None:  # the checkpoint holds the global state: take this rank's rows
            hidden = distributed.split_batch(hidden, rank, world)
        per_rank = ckpt.state.get("rng_ranks")
        if per_rank is not None and len(per_rank) == world:  # the same world size: each rank its own streams
            epoch_rng, resumed_rng = ckpt.state["epoch_rng_ranks"][rank], per_rank[rank]

    net: nn.Module = model  # what the step function runs: the model, or its DDP wrapper
    ddp: _DDP | None = None
    if world > 1:
        cuda = any(p.is_cuda for p in model.parameters())
        # Broadcasts rank 0's weights, so that every rank starts from the same ones.
        ddp = _DDP(model, device_ids=[torch.cuda.current_device()] if cuda else None)
        net = ddp

    # The clock starts here, after set-up (the first optimiser of a process imports torch._dynamo: ~1 s).
    started, elapsed_before = time.perf_counter(), run.elapsed_s
    shared_elapsed = elapsed_before

    def save() -> None:
        run.elapsed_s = elapsed()
        state = {
            "progress": dataclasses.asdict(run),
            # Every rank's carried rows together: the state a single process would carry.
            "hidden": distributed.gather_batch(hidden) if cfg.stateful else None,
            "best_weights": best_weights,
            "averages": averages,
            "epoch_rng": epoch_rng,
            "rng": capture_rng_state(),
        }
        if world > 1:  # each rank's generators, for an exact resume at the same world size
            state["rng_ranks"] = distributed.all_gather_objects(state["rng"])
            state["epoch_rng_ranks"] = distributed.all_gather_objects(epoch_rng)
        distributed.on_main(
            lambda: save_checkpoint(ckpt_dir, run.step, model, optimizer=optimizer, scheduler=scheduler,
                                    state=state, config=config, keep=cfg.keep_checkpoints),
            "write a checkpoint",
        )  # fmt: skip

    def lr() -> float:
        return optimizer.param_groups[0]["lr"]

    def out_of_time() -> bool:
        return cfg.max_minutes is not None and time_used() >= 1.0

    def done() -> bool:
        return run.stopped_early or (cfg.max_steps is not None and run.step >= cfg.max_steps) or out_of_time()

    def validate() -> float | None:
        if val_data is None:
            return None
        with _averaged_weights(model, averages):
            return evaluate(model, val_data, step, stateful=cfg.stateful)

    with ExitStack() as stack:
        log = tb = None
        if main:
            log = MetricsCsv(out_dir / "metrics.csv", resume_step=run.step if latest is not None else None)
            stack.callback(log.close)
            tb = open_tensorboard(out_dir) if cfg.tensorboard else None
            if tb is not None:
                stack.callback(tb.close)
        bar = stack.enter_context(progress_bar(total_steps, run.step, enabled=cfg.progress and main))

        # A run resumed mid-epoch finishes that epoch's validation and checkpoint even when its steps are
        # done (a checkpoint of the last step comes before them, and a kill may fall in between).
        while run.epoch < cfg.epochs and (not done() or run.batch_in_epoch > 0):
            _set_epoch(train_data, run.epoch)
            if run.batch_in_epoch == 0:
                epoch_rng, hidden = capture_rng_state(), None
            else:
                restore_rng_state(epoch_rng)  # replay the epoch's data order up to where we stopped
            batches = iter(train_data)
            for _ in range(run.batch_in_epoch):
                next(batches)
            if resumed_rng is not None:
                restore_rng_state(resumed_rng)
                resumed_rng = None

            net.train()
            tick, tick_items = time.perf_counter(), 0
            # Accumulation groups of k batches; the last group of an epoch may be shorter.
            source = _with_last(batches) if k > 1 else ((b, False) for b in batches)
            in_group, group_loss, group_items, group_finite = 0, 0.0, 0, True
            for batch, last_of_epoch in source:
                if in_group == 0:
                    if done():
                        break
                    optimizer.zero_grad(set_to_none=True)
                    group_loss, group_items, group_finite = 0.0, 0, True
                closes = in_group + 1 == k or last_of_epoch
                # Gradients are averaged across ranks only on the batch that closes the group.
                with ddp.no_sync() if ddp is not None and not closes else nullcontext():
                    loss, new_hidden, items = step(net, batch, _detach(hidden) if cfg.stateful else None)
                    # The global batch's loss sum and items (and rank 0's clock): one small all-reduce.
                    now = elapsed_before + time.perf_counter() - started if main else 0.0
                    loss_sum, items_all, clock = distributed.all_reduce_sum([loss.item() * items, items, now])
                    finite = math.isfinite(loss_sum)
                    if finite or ddp is not None:  # every rank must run backward: DDP's all-reduce is in it
                        # DDP averages the ranks' gradients; weighting each by its share of the items makes
                        # that the gradient of the global batch's mean loss, shares equal or not.
                        share = world * items / max(items_all, 1) if world > 1 else 1.0
                        (loss * (share / k)).backward()
                if world > 1:
                    shared_elapsed = clock
                in_group += 1
                run.batch_in_epoch += 1
                if finite:
                    hidden = new_hidden
                    group_loss += loss_sum
                    group_items += int(items_all)
                else:
                    hidden, group_finite = None, False  # the state may be non-finite too
                if not closes:
                    continue

                # One optimiser step for the group. A non-finite loss or gradient skips the update instead of
                # poisoning the weights (every rank decides alike: the losses and gradients are global).
                if group_finite and in_group != k:  # a short last group: the mean over its batches
                    for p in model.parameters():
                        if p.grad is not None:
                            p.grad.mul_(k / in_group)
                grad_norm = torch.tensor(math.nan)
                if group_finite:
                    grad_norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
                applied = group_finite and bool(torch.isfinite(grad_norm))
                loss_value = group_loss / group_items if group_finite and group_items else math.nan
                items = group_items
                in_group = 0
                if applied:
                    optimizer.step()
                    if averages is not None:
                        _update_averages(averages, model, cfg.ema_decay, run.step)
                    if per_step_schedule:
                        scheduler.step()
                    run.nonfinite = 0
                    run.epoch_loss += group_loss
                    run.epoch_items += group_items
                    run.window_loss += group_loss
                    run.window_items += group_items
                else:  # the non-finite gradients are cleared by the next step's zero_grad
                    run.nonfinite, hidden = run.nonfinite + 1, None
                    if run.nonfinite >= cfg.max_nonfinite:
                        raise FloatingPointError(
                            f"{run.nonfinite} consecutive steps had a non-finite loss or gradient (up to step "
                            f"{run.step + 1}); lower train.lr or train.clip_norm, or check the data for NaN/inf"
                        )
                run.step += 1

                tick_items += items
                elapsed_s = time.perf_counter() - tick
                rate = tick_items / elapsed_s if elapsed_s > 0 else math.nan
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.4f}", items_per_s=f"{rate:.0f}", refresh=False)
                if run.step % cfg.log_every == 0 and run.window_items:
                    window = run.window_loss / run.window_items
                    if log is not None:
                        log.write(step=run.step, epoch=run.epoch, split="train", loss=window, lr=lr(),
                                  grad_norm=grad_norm.item(), items_per_s=rate)  # fmt: skip
                    if tb is not None:
                        tb.add_scalar("train/loss", window, run.step)
                        tb.add_scalar("train/lr", lr(), run.step)
                    run.window_loss, run.window_items = 0.0, 0
                if cfg.checkpoint_every and run.step % cfg.checkpoint_every == 0:
                    save()
                if on_step is not None:
                    on_step(StepLog(run.step, run.epoch, loss_value, lr(), grad_norm.item(), items, not applied))

            # End of the epoch (or of max_steps): evaluate, early stopping, schedule, checkpoint.
            train_loss = run.epoch_loss / run.epoch_items if run.epoch_items else math.nan
            val_loss = distributed.on_main(validate, "evaluate on the validation data")
            improved = False
            if val_loss is not None:
                if run.best_val_loss is None or val_loss < run.best_val_loss - cfg.min_delta:
                    run.best_val_loss, run.best_epoch, run.bad_evals = val_loss, run.epoch, 0
                    best_weights, improved = _snapshot(model, averages), True
                else:
                    run.bad_evals += 1
                    run.stopped_early = run.bad_evals >= cfg.patience
                if log is not None:
                    log.write(step=run.step, epoch=run.epoch, split="val", loss=val_loss, lr=lr(), grad_norm="",
                              items_per_s="")  # fmt: skip
                if tb is not None:
                    tb.add_scalar("val/loss", val_loss, run.step)
            if not per_step_schedule:
                scheduler.step(val_loss if val_loss is not None else train_loss)
            epoch_log = EpochLog(run.epoch, run.step, train_loss, val_loss, lr(), improved)
            run.history.append(dataclasses.asdict(epoch_log))
            if cfg.progress and main:
                val_text = f", val loss {val_loss:.4f}" if val_loss is not None else ""
                bar.write(f"epoch {run.epoch}: train loss {train_loss:.4f}{val_text}")
            run.epoch, run.batch_in_epoch, run.epoch_loss, run.epoch_items = run.epoch + 1, 0, 0.0, 0
            save()
            if on_epoch_end is not None:
                on_epoch_end(epoch_log)

    if best_weights is not None:
        model.load_state_dict(best_weights)
    elif averages is not None:  # no validation: the final average
        model.load_state_dict(_snapshot(model, averages))

    def write_model() -> None:
        save_model_file(model, out_dir / "model.safetensors")  # sealed with its SHA-256, atomic, no links

    distributed.on_main(write_model, "write model.safetensors")
    return FitResult(
        steps=run.step,
        history=[EpochLog(**h) for h in run.history],
        best_val_loss=run.best_val_loss,
        best_epoch=run.best_epoch,
        stopped_early=run.stopped_early,
    )
