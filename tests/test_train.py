"""fastconv.train: fit() learns, evaluate() computes the documented metrics, callbacks work."""

import numpy as np
import pytest

import fastconv as fc
import fastconv.functional as F
from fastconv import nn, optim
from fastconv.data import DataLoader
from fastconv.train import EarlyStopping, evaluate, fit


class SoftmaxCE(nn.Module):
    """Mean cross-entropy over the functional kernels (independent of nn's loss modules)."""

    def forward(self, logits, target):
        self._args = (logits, target)
        return float(F.cross_entropy(logits, target))

    __call__ = forward

    def backward(self, dout=1.0):
        return F.cross_entropy_backward(np.asarray(dout, dtype=self._args[0].dtype), *self._args)


def clusters(n, seed):
    """Three well-separated classes of 4x4 single-channel images."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((3, 1, 4, 4)) * 2
    y = rng.integers(0, 3, n)
    x = centres[y] + 0.5 * rng.standard_normal((n, 1, 4, 4))
    return x.astype(np.float32), y


def linear_classifier():
    fc.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 4), nn.Flatten())


def test_fit_learns_a_separable_task_and_records_history():
    x, y = clusters(600, 1)
    xv, yv = clusters(300, 2)
    model = linear_classifier()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    history = fit(model, SoftmaxCE(), opt, DataLoader(x, y, 32, shuffle=True, seed=0), epochs=4,
                  val_loader=DataLoader(xv, yv, 100), scheduler=sched, progress=False)
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert [r["lr"] for r in history] == pytest.approx([0.1, 0.1, 0.05, 0.05])
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_acc"] > 0.9 and history[-1]["images_per_s"] > 0
    assert model.training


def test_evaluate_metrics_follow_their_definitions():
    class Fixed(nn.Module):
        def forward(self, x):
            return np.eye(3, dtype=np.float32)[x[:, 0].astype(int)]

    pred = np.array([0, 0, 1, 1, 2, 2, 2, 0])
    true = np.array([0, 1, 1, 1, 2, 0, 2, 0])
    scores = evaluate(Fixed(), [(pred[:, None].astype(np.float32), true)])
    expected_cm = np.array([[2, 0, 1], [1, 2, 0], [0, 0, 2]])
    np.testing.assert_array_equal(scores["confusion_matrix"], expected_cm)
    precision = np.array([2 / 3, 2 / 2, 2 / 3])
    recall = np.array([2 / 3, 2 / 3, 2 / 2])
    f1 = 2 * precision * recall / (precision + recall)
    assert scores["accuracy"] == pytest.approx(6 / 8)
    np.testing.assert_allclose(scores["per_class"]["precision"], precision)
    np.testing.assert_allclose(scores["per_class"]["recall"], recall)
    assert scores["f1"] == pytest.approx(f1.mean()) and scores["precision"] == pytest.approx(
        precision.mean()) and scores["recall"] == pytest.approx(recall.mean())
    np.testing.assert_array_equal(scores["per_class"]["support"], [3, 3, 2])


def test_evaluate_averages_over_the_classes_the_set_mentions():
    """A class absent from targets and predictions counted as precision and recall 0 in the
    macro figures (a perfect classifier scored 0.44), as scikit-learn's default does not."""
    class Fixed(nn.Module):
        def forward(self, x):
            return np.eye(10, dtype=np.float32)[x[:, 0].astype(int)]

    true = np.array([0, 1, 2, 8, 8])
    scores = evaluate(Fixed(), [(true[:, None].astype(np.float32), true)])
    assert scores["recall"] == scores["precision"] == scores["f1"] == 1.0
    assert scores["confusion_matrix"].shape == (10, 10)  # the model's ten classes


def test_evaluate_and_fit_leave_out_ignored_labels_and_weigh_the_loss_as_torch():
    """Labels equal to the loss's ignore_index raised IndexError in evaluate and counted in
    fit's accuracy; class weights and ignored labels made the loss a mean of batch means."""
    torch = pytest.importorskip("torch")
    x, y = clusters(23, 6)
    y[[1, 7, 8, 20]] = -100
    weight = np.array([1.0, 2.0, 0.5], np.float32)
    model = linear_classifier()
    loss = nn.CrossEntropyLoss(weight=weight)
    scores = evaluate(model, DataLoader(x, y, 5), loss)
    logits = model.eval()(x)
    kept = y != -100
    assert scores["confusion_matrix"].sum() == kept.sum()
    assert scores["accuracy"] == pytest.approx((logits.argmax(1) == y)[kept].mean())
    expected = torch.nn.functional.cross_entropy(torch.tensor(logits.astype(np.float64)),
                                                 torch.tensor(y), torch.tensor(weight.astype(
                                                     np.float64))).item()
    assert scores["loss"] == pytest.approx(expected, rel=1e-6)
    history = fit(model, loss, optim.SGD(model.parameters(), lr=0.0), DataLoader(x, y, 5),
                  epochs=1, progress=False)
    assert history[0]["train_acc"] == pytest.approx(scores["accuracy"])
    assert history[0]["train_loss"] == pytest.approx(expected, rel=1e-6)


def test_evaluate_takes_a_batch_with_nothing_counted_and_per_pixel_labels():
    """A batch of ignored labels made the loss 0/0 and the set's loss NaN; per-pixel labels
    (N, H, W) were argmaxed as if they were probabilities (IndexError)."""
    torch = pytest.importorskip("torch")

    class Fixed(nn.Module):
        def forward(self, x):
            return x

    x = np.random.default_rng(8).standard_normal((4, 3, 2, 5))
    y = np.random.default_rng(9).integers(0, 3, (4, 2, 5))
    y[:2] = -100  # the first batch has nothing to count
    scores = evaluate(Fixed(), DataLoader(x, y, 2), nn.CrossEntropyLoss())
    expected = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(y)).item()
    assert scores["loss"] == pytest.approx(expected, rel=1e-12)
    kept = y != -100
    assert scores["accuracy"] == pytest.approx((x.argmax(1) == y)[kept].mean())
    assert scores["confusion_matrix"].sum() == kept.sum()


def test_checkpoint_refuses_a_monitor_the_record_lacks():
    """It saved nothing, silently, without a val_loader (EarlyStopping raised)."""
    from fastconv.train import Checkpoint

    x, y = clusters(20, 7)
    model = linear_classifier()
    with pytest.raises(KeyError, match="Checkpoint: the epoch record has no 'val_acc'"):
        fit(model, SoftmaxCE(), optim.SGD(model.parameters(), lr=0.1), DataLoader(x, y, 10), 1,
            callbacks=[Checkpoint("unused.npz")], progress=False)


def test_early_stopping_stops_and_restores_the_best_weights():
    x, y = clusters(200, 3)
    model = linear_classifier()
    opt = optim.SGD(model.parameters(), lr=0.0)  # nothing improves after epoch 1
    stopper = EarlyStopping(monitor="val_loss", mode="min", patience=2)
    history = fit(model, SoftmaxCE(), opt, DataLoader(x, y, 50), epochs=10,
                  val_loader=DataLoader(x, y, 50), callbacks=[stopper], progress=False)
    assert len(history) == 3 and stopper.best_epoch == 1
    with pytest.raises(KeyError, match="val_acc"):
        fit(model, SoftmaxCE(), opt, DataLoader(x, y, 50), epochs=1, progress=False,
            callbacks=[EarlyStopping()])


def test_fit_shows_a_progress_bar(capsys):
    x, y = clusters(64, 4)
    model = linear_classifier()
    fit(model, SoftmaxCE(), optim.SGD(model.parameters(), lr=0.1), DataLoader(x, y, 16),
        epochs=1, progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "img_s=" in err and "acc=" in err


def test_checkpoint_saves_the_best_model_and_it_reloads(tmp_path):
    from fastconv.train import Checkpoint

    x, y = clusters(300, 5)
    model = linear_classifier()
    path = tmp_path / "best.npz"
    fit(model, SoftmaxCE(), optim.SGD(model.parameters(), lr=0.1), DataLoader(x, y, 50), 3,
        val_loader=DataLoader(x, y, 100), callbacks=[Checkpoint(path)], progress=False)
    assert path.exists()
    restored = linear_classifier()
    restored.load_state_dict(fc.load(path))
    best = evaluate(restored, DataLoader(x, y, 100))["accuracy"]
    assert best >= 0.9


def test_saved_model_commands_say_what_is_wrong_without_a_traceback(tmp_path):
    """A missing file, another model's weights or an opset out of range ended in a traceback."""
    from fastconv import cli, models

    weights = tmp_path / "lenet5.npz"
    fc.save(models.lenet5(28).state_dict(), weights)
    out = str(tmp_path / "m.onnx")
    cases = [(["evaluate", "--model-file", str(tmp_path / "none.npz"), "--model", "lenet5",
               "--dataset", "mnist"], "no such model file"),
             (["export", "--model-file", str(weights), "--model", "fashion_cnn", "--dataset",
               "mnist", "--out", out], "does not hold fashion_cnn's weights for mnist")]
    for argv, match in cases:
        with pytest.raises(SystemExit, match=match):
            cli.main(argv)
    pytest.importorskip("onnx")
    with pytest.raises(SystemExit, match="opset_version must be an int in"):
        cli.main(["export", "--model-file", str(weights), "--model", "lenet5", "--dataset",
                  "mnist", "--out", out, "--opset", "12"])


def test_a_closed_output_pipe_ends_the_command_without_a_traceback():
    """`fastconv evaluate ... | head` closed the pipe under a command still printing."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from fastconv import cli\n"
            "def printing(argv):\n"
            "    for i in range(100000):\n"
            "        print('line', i)\n"
            "cli._main = printing\n"
            "sys.exit(cli.main([]))\n")
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as run:
        run.stdout.readline()
        run.stdout.close()  # as head does after its lines
        err = run.stderr.read().decode()
        assert run.wait(timeout=60) == 1 and "Traceback" not in err, err
