"""moving-digits: the baselines on a hand-built sequence, the FC-LSTM's size, and a seconds-long run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lstmkit.models import ConvForecaster, FCForecaster, FramesModel, fc_hidden_for
from lstmkit.tasks import TaskError, get_task, runner
from lstmkit.tasks.moving_digits.predict import predict_run
from lstmkit.tasks.moving_digits.scoring import COPY, FC, MODEL, beats_baselines, score_split
from smoke import train_smoke


def square_sequence() -> torch.Tensor:
    """One sequence (1, 6, 1, 8, 8): a 2 x 2 square moving right 1 pixel a frame along rows 3-4."""
    frames = torch.zeros(1, 6, 1, 8, 8)
    for t in range(6):
        frames[0, t, 0, 3:5, t : t + 2] = 1.0
    return frames


class Zero(torch.nn.Module):
    """Logits 0 (every pixel 0.5) for 3 frames."""

    def forward(self, x):
        return torch.zeros(3, *x.shape[1:])


def test_baselines_on_a_hand_built_sequence():
    scores, preds = score_split(Zero(), Zero(), square_sequence(), input_frames=3, batch_size=1)
    # Copy-last repeats frame 2 (columns 2-3). Frame 3 (columns 3-4) shares one column: 2 pixels differ on
    # each side, 4 in all; frames 4 and 5 share none: 8 pixels differ, each by 1.
    assert scores[COPY]["per_frame"]["mse"] == [4.0, 8.0, 8.0]
    assert scores[COPY]["per_frame"]["mae"] == [4.0, 8.0, 8.0]
    assert np.array_equal(preds[COPY][0, 0], square_sequence()[0, 2, 0].numpy())
    # A model that says 0.5 everywhere: 64 pixels off by 0.5 -> 16 (MSE), 32 (MAE), on every frame.
    for name in (MODEL, FC):
        assert scores[name]["per_frame"]["mse"] == [16.0] * 3 and scores[name]["per_frame"]["mae"] == [32.0] * 3
    assert scores[COPY]["ssim"] > scores[MODEL]["ssim"]
    assert beats_baselines(scores) == {COPY: False, FC: False}


def test_the_floor_applies_to_every_method_alike():
    """model.floor: a model saying 0.5 everywhere, floored at 0.6, predicts the black frame (MSE = the 4 lit
    pixels of each truth frame), the FC-LSTM too; copy-last's frame has exact 0s and 1s, so it is kept."""
    frames = square_sequence()
    frames[0, 2, 0, 0, 0] = 0.3  # a faint pixel in the last given frame: below the floor, copy-last drops it
    scores, preds = score_split(Zero(), Zero(), frames, input_frames=3, batch_size=1, floor=0.6)
    for name in (MODEL, FC):
        assert not preds[name].any() and scores[name]["per_frame"]["mse"] == [4.0] * 3
    assert preds[COPY][0, 0, 0, 0] == 0.0 and scores[COPY]["per_frame"]["mse"] == [4.0, 8.0, 8.0]
    unfloored, _ = score_split(Zero(), Zero(), frames, input_frames=3, batch_size=1)
    assert unfloored[COPY]["per_frame"]["mse"] == pytest.approx([4.09, 8.09, 8.09])


def test_fc_baseline_has_about_the_convlstms_parameters():
    conv = get_task("moving-digits").build_model(get_task("moving-digits").default_config())
    n = sum(p.numel() for p in conv.parameters())
    h = fc_hidden_for(n, (64, 64), 1)
    def count(hidden: int) -> int:
        return sum(p.numel() for p in FCForecaster((64, 64), hidden, 1, 10).parameters())

    # One FC-LSTM unit on 64 x 64 frames costs about 20,600 parameters (its four gates' input weights and its share
    # of the head), so "about the same" is the nearest count the FC-LSTM can have: within half a unit's step, and no
    # other hidden size is nearer.
    fc_n, step = count(h), count(h + 1) - count(h)
    assert abs(fc_n - n) <= step / 2 and abs(fc_n - n) < abs(count(h + 1) - n) and abs(fc_n - n) < abs(count(h - 1) - n)
    x = torch.rand(10, 2, 1, 64, 64)
    assert conv(x).shape == FCForecaster((64, 64), h, 1, 10)(x).shape == (10, 2, 1, 64, 64)
    assert (n, h, fc_n) == (76576, 4, 86224)  # the task's defaults (kernel 3); docs/results.md quotes these


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    return train_smoke("moving-digits", tmp_path_factory.mktemp("digits"))


def test_smoke_run_end_to_end(smoke_run):
    run_dir, config = smoke_run.run_dir, get_task("moving-digits").smoke_config(smoke_run.run_dir)
    for f in ("strips.png", "frame_metrics.png", "data.json", "fc-lstm/model.safetensors"):
        assert (run_dir / f).is_file(), f
    test = json.loads((run_dir / "summary.json").read_text())["test"]
    assert set(test["scores"]) == {MODEL, COPY, FC}
    assert len(test["scores"][MODEL]["per_frame"]["ssim"]) == config.data.output_frames
    metrics, lines = runner.evaluate(run_dir, "test")
    assert metrics["scores"][FC]["mse"] == pytest.approx(test["scores"][FC]["mse"])  # the baseline reloads
    assert any("copy last frame" in line for line in lines)


def test_predict_from_npy_and_png_folder(smoke_run, tmp_path):
    from PIL import Image

    frames = square_sequence()[0, :, 0].repeat_interleave(2, 1).repeat_interleave(2, 2)  # (6, 16, 16)
    np.save(tmp_path / "mine.npy", frames.numpy())
    result = predict_run(smoke_run.run_dir, tmp_path / "mine.npy", frames=5)  # 3 a call: fed back once
    assert result.frames.shape == (5, 16, 16) and result.frames.min() >= 0 and result.frames.max() <= 1
    floor = get_task("moving-digits").smoke_config(smoke_run.run_dir).model.floor
    assert floor > 0 and not ((result.frames > 0) & (result.frames < floor)).any()  # emitted floored
    assert [f.name for f in result.files] == [f"pred_{i:02d}.png" for i in range(5)] + ["sequence.gif"]
    with Image.open(result.out / "sequence.gif") as gif:  # 150 ms a frame (PIL merges equal neighbours'
        durations = []  # durations: a warped prediction can repeat the frame before it exactly)
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
    assert sum(durations) == (6 + 5) * 150
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, f in enumerate(frames.numpy()):
        Image.fromarray((f * 255).astype(np.uint8)).save(folder / f"f{i:02d}.png")
    again = predict_run(smoke_run.run_dir, folder, out=tmp_path / "out")
    assert again.frames.shape == (3, 16, 16) and (tmp_path / "out" / "pred_02.png").is_file()
    np.testing.assert_allclose(again.frames, result.frames[:3], atol=1e-5)  # the same frames, read from PNGs
    with pytest.raises(TaskError, match=r"multiples of the run.s model\.patch=2"):
        np.save(tmp_path / "odd.npy", np.zeros((4, 15, 16), dtype=np.float32))
        predict_run(smoke_run.run_dir, tmp_path / "odd.npy")
    with pytest.raises(TaskError, match=r"uint8 \(0-255\) or finite floats in \[0, 1\]"):
        np.save(tmp_path / "big.npy", np.full((4, 16, 16), 3.0))
        predict_run(smoke_run.run_dir, tmp_path / "big.npy")


def test_exports_unrolled_and_verifies_in_onnxruntime(smoke_run, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnx

    from lstmkit.export.rundir import export_run

    result = export_run(smoke_run.run_dir, out=tmp_path / "digits.onnx")
    assert result.max_abs_error is not None  # verified in onnxruntime within the derived frames_tolerance
    proto = onnx.load(str(result.path))
    assert [i.name for i in proto.graph.input] == ["frames"] and [o.name for o in proto.graph.output] == [
        "predicted_frames"
    ]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["lstmkit.task"] == "moving-digits" and json.loads(meta["lstmkit.preprocess"])["input_frames"] == 3
    assert {"Conv", "Less", "Where"} <= {n.op_type for n in proto.graph.node}  # Less, Where: model.floor


@pytest.mark.parametrize(("condition", "skip", "output"), [(True, True, "motion"), (True, True, "pixels"),
                                                          (True, False, "pixels"), (False, False, "pixels")])
def test_every_forecaster_variant_exports(condition, skip, output, tmp_path):
    pytest.importorskip("onnxruntime")
    from lstmkit.export.frames import frames_to_onnx, frames_tolerance

    model = ConvForecaster(FramesModel(hidden_size=4, kernel_size=3, patch=2, num_layers=2, horizon=3,
                                       condition=condition, skip=skip, output=output,
                                       correlation=output == "motion"),
                           max_shift=2 if output == "motion" else None)  # fmt: skip
    result = frames_to_onnx(model, tmp_path / "m.onnx", 4, (8, 8))
    x = torch.rand(4, 2, 1, 8, 8, generator=torch.Generator().manual_seed(0))  # verify_frames_onnx's first input
    assert result.max_abs_error <= frames_tolerance(model, x)


def test_skip_starts_as_a_copy_of_the_last_frame():
    model = ConvForecaster(FramesModel(hidden_size=4, kernel_size=3, patch=2, num_layers=1, horizon=1,
                                       output="pixels", correlation=False))  # fmt: skip
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)
    x = square_sequence()[0, :3].unsqueeze(1)  # (3, 1, 1, 8, 8)
    pred = torch.sigmoid(model(x))[0, 0, 0]
    assert torch.allclose(pred, torch.sigmoid(8 * x[-1, 0, 0] - 4))  # 0.98 on the square, 0.02 elsewhere


def test_smoke_run_with_winograd_layers_exports(tmp_path):
    """model.impl="winograd": trains, scores and exports (the export verifies against the direct convolutions)."""
    pytest.importorskip("onnxruntime")
    from lstmkit.export.rundir import export_run

    result = train_smoke("moving-digits", tmp_path, {"model.impl": "winograd"})
    assert 'impl = "winograd"' in (result.run_dir / "config.toml").read_text()
    assert (result.run_dir / "summary.json").is_file()
    export_run(result.run_dir, out=tmp_path / "digits.onnx")
