import pytest
import torch
from torch import nn

from bdunlearn.data.images import BatchSchedule
from bdunlearn.errors import TrainingDiverged
from bdunlearn.runtime import Precision, resolve_precision
from bdunlearn.training import OptimSettings, Resume, fit, warmup_cosine


def _problem(init_seed=0):
    data = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=data)
    y = x @ torch.randn(8, 1, generator=data)
    torch.manual_seed(init_seed)
    model = nn.Linear(8, 1)
    return model, (lambda index: nn.functional.mse_loss(model(x[index]), y[index]))


def test_fit_lowers_the_loss():
    model, loss_fn = _problem()
    result = fit(list(model.parameters()), loss_fn, BatchSchedule(64, 16, seed=0), OptimSettings(80, 16, 0.05, 0.0), "t")
    assert len(result.losses) == 80 and result.losses[-1] < 0.2 * result.losses[0]


def test_bf16_autocast_trains_and_keeps_fp32_weights():
    model, loss_fn = _problem()
    precision = Precision("cpu", torch.bfloat16)
    result = fit(list(model.parameters()), loss_fn, BatchSchedule(64, 16, 0), OptimSettings(80, 16, 0.05, 0.0), "t", precision=precision)
    assert result.losses[-1] < 0.2 * result.losses[0]
    assert model.weight.dtype == torch.float32


def test_divergence_names_the_exact_step():
    model, loss_fn = _problem()
    calls = {"n": 0}

    def poisoned(index):
        calls["n"] += 1
        loss = loss_fn(index)
        return loss * float("nan") if calls["n"] == 8 else loss

    with pytest.raises(TrainingDiverged) as excinfo:
        fit(list(model.parameters()), poisoned, BatchSchedule(64, 16, 0), OptimSettings(30, 16, 0.01), "stage")
    assert excinfo.value.step == 7 and "at step 7" in str(excinfo.value)


def test_resume_continues_to_the_same_weights(tmp_path):
    settings = OptimSettings(40, 16, 0.05, 0.01, warmup_steps=5)
    model, loss_fn = _problem()
    fit(list(model.parameters()), loss_fn, BatchSchedule(64, 16, 0), settings, "t")
    reference = [p.detach().clone() for p in model.parameters()]

    interrupted, loss_fn = _problem()
    resume = Resume(tmp_path / "state.pt", every=10)

    def dies_at_25(index, calls={"n": 0}):  # noqa: B006 - a call counter
        calls["n"] += 1
        if calls["n"] == 26:
            raise KeyboardInterrupt
        return loss_fn(index)

    with pytest.raises(KeyboardInterrupt):
        fit(list(interrupted.parameters()), dies_at_25, BatchSchedule(64, 16, 0), settings, "t", resume=resume)
    assert resume.path.is_file()
    fresh, loss_fn = _problem(init_seed=1)  # different starting weights: everything must come from the saved state
    result = fit(list(fresh.parameters()), loss_fn, BatchSchedule(64, 16, 0), settings, "t", resume=resume)
    assert all(torch.equal(a, b) for a, b in zip(reference, fresh.parameters(), strict=True))
    assert len(result.losses) == 40 and not resume.path.exists()


def test_warmup_then_cosine():
    factor = warmup_cosine(4, 20)
    assert factor(0) == 0.25 and factor(3) == 1.0
    assert factor(4) == pytest.approx(1.0) and factor(19) < 0.05


def test_precision_resolution():
    assert resolve_precision("auto", torch.device("cpu")).dtype is None
    assert resolve_precision("auto", torch.device("cuda")).dtype == torch.bfloat16
    assert resolve_precision("fp32", torch.device("cuda")).dtype is None
    assert resolve_precision("bf16", torch.device("cpu")).name == "bfloat16"


def test_fit_reports_the_gradient_norm_where_it_starts():
    import torch

    from bdunlearn.training import OptimSettings, fit

    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(3))
    target = torch.tensor([1.0, -2.0, 0.5])
    expected = float(torch.linalg.vector_norm(2 * (weight.detach() - target)))  # d/dw |w - t|^2
    result = fit([weight], lambda _: ((weight - target) ** 2).sum(), lambda step: None, OptimSettings(3, 1, 0.1, 0.0, 0), "test")
    assert result.start_grad_norm == pytest.approx(expected, rel=1e-6)
    assert result.losses[0] == pytest.approx(expected**2 / 4, rel=1e-6)  # the loss at the start, before any step
