"""Time budgets: a run projected past `train.max_hours` / `evaluate.max_hours` is refused
within its first seconds, with one line naming the projection, the parameter and the way out."""

from __future__ import annotations

import pytest
import torch
import yaml

from movierec.config.params import ConfigError, parse_params
from movierec.pipeline.runner import run_cli
from movierec.train import budget as budget_module
from movierec.train.budget import Budget, BudgetError, duration


def test_projection_is_elapsed_over_the_fraction_done():
    budget = Budget(1.0, "training x", "train.max_hours", "use a GPU")
    budget.check(10.0, 0.01)  # 1,000 s projected: within the hour
    with pytest.raises(BudgetError) as refused:
        budget.check(10.0, 0.001)  # 10,000 s projected
    line = str(refused.value)
    assert "\n" not in line
    assert line.startswith("training x would take about 2.8 h here")
    assert "first 10 s" in line and "`train.max_hours` = 1 h" in line
    assert "use a GPU" in line and "0 = no limit" in line


def test_setup_is_paid_once_not_extrapolated():
    budget = Budget(1.0, "ranking", "evaluate.max_hours", "use a GPU")
    budget.check(10.0, 0.01, setup=2000.0)  # 2,000 + 1,000 s: within the hour
    with pytest.raises(BudgetError, match=r"about 67 min here \(projected from its first 34 min\)"):
        budget.check(10.0, 0.005, setup=2000.0)  # 2,000 + 2,000 s


def test_no_limit_and_the_probe_wait():
    Budget(0.0, "x", "p", "a").check(1e6, 1e-9)  # 0 = no limit
    short = Budget(1e-6, "x", "p", "a")
    short.check(budget_module.PROBE_SECONDS / 2, 1e-9)  # still probing: no verdict yet
    with pytest.raises(BudgetError):
        short.check(budget_module.PROBE_SECONDS / 2, 1e-9, final=True)  # a whole epoch


@pytest.mark.parametrize(
    "seconds, text",
    [(42, "42 s"), (119, "119 s"), (720, "12 min"), (12_240, "3.4 h"), (4.068e7, "11,300 h")],
)
def test_duration(seconds, text):
    assert duration(seconds) == text


def test_trainer_refuses_after_its_first_batch_not_after_the_epoch(monkeypatch):
    from movierec.train.trainer import TrainConfig, Trainer

    monkeypatch.setattr(budget_module, "PROBE_SECONDS", 0.0)
    calls = []

    class Counting(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def loss(self, batch):
            calls.append(1)
            return ((self.w - batch["x"]) ** 2).mean()

        def predict(self, batch):
            return self.w.expand(batch["user"].shape[0])

    trainer = Trainer(
        TrainConfig(epochs=50, batch_size=2),
        device=torch.device("cpu"),
        seed=0,
        progress=False,
        budget=Budget(1e-9, "training counting", "train.max_hours", "use a GPU"),
    )
    val = {"user": torch.zeros(4, dtype=torch.long), "rating": torch.ones(4)}
    with pytest.raises(BudgetError, match="training counting would take"):
        trainer.fit(Counting(), {"x": torch.ones(100)}, val)
    assert len(calls) == 1  # 50 batches an epoch: refused after the first


def _set(project, section: str, key: str, value) -> None:
    path = project / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    raw[section][key] = value
    path.write_text(yaml.safe_dump(raw))


def test_train_stage_refuses_in_one_line_and_writes_nothing(tiny_project, monkeypatch, capsys):
    from movierec.config.params import load_params
    from movierec.pipeline.train_step import train_model

    monkeypatch.setattr(budget_module, "PROBE_SECONDS", 0.0)
    _set(tiny_project, "train", "max_hours", 1e-9)
    with pytest.raises(SystemExit):
        run_cli(lambda: train_model("mf", load_params()))
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0]
    assert "training mf (2 epochs at most) would take" in lines[0]
    assert "`train.max_hours`" in lines[0] and "`models.mf.epochs`" in lines[0]
    assert not (tiny_project / "data" / "models" / "mf").exists()
    assert not (tiny_project / "metrics" / "train" / "mf.json").exists()


def test_evaluate_stage_refuses_before_writing_metrics(tiny_project, monkeypatch):
    from movierec.config.params import load_params
    from movierec.pipeline.evaluate_step import evaluate_model
    from movierec.pipeline.train_step import train_model

    train_model("mf", load_params())  # the default budget (24 h) lets it through
    monkeypatch.setattr(budget_module, "PROBE_SECONDS", 0.0)
    _set(tiny_project, "evaluate", "max_hours", 1e-9)
    with pytest.raises(BudgetError, match=r"ranking all \d+ movies for \d+ users with mf"):
        evaluate_model("mf", load_params())
    assert not (tiny_project / "metrics" / "eval" / "mf.json").exists()


@pytest.mark.parametrize("section", ["train", "evaluate"])
def test_a_negative_budget_is_a_config_error(section):
    with pytest.raises(ConfigError, match=rf"`{section}.max_hours` must be >= 0"):
        from movierec.config.sections import eval_section
        from movierec.models.selection import train_section

        read = train_section if section == "train" else eval_section
        read(parse_params({section: {"max_hours": -1}}))


def test_trainer_counts_each_validation_when_it_validates_every_k_epochs():
    """Validating every 5th epoch: epoch 1's training alone is within budget, and the run
    is refused once the first validation shows its share (20 of them), not after it."""
    import time

    from movierec.train.trainer import TrainConfig, Trainer, Validation, judged_epochs

    assert judged_epochs(100, 5) == 20 and judged_epochs(7, 5) == 2 and judged_epochs(3, 1) == 3
    validations = []

    def slow(_module):
        validations.append(1)
        time.sleep(0.05)  # 20 validations: 1 s, over the 0.5 s budget
        return {"score": float(len(validations))}

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def loss(self, batch):
            return ((self.w - batch["x"]) ** 2).mean()

    trainer = Trainer(
        TrainConfig(epochs=100, batch_size=10, validate_every=5, patience=100),
        device=torch.device("cpu"),
        seed=0,
        progress=False,
        budget=Budget(0.5 / 3600, "training tiny", "train.max_hours", "validate less often"),
    )
    with pytest.raises(BudgetError, match=r"training tiny would take about 1 s here"):
        trainer.fit(Tiny(), {"x": torch.ones(10)}, Validation("score", True, slow))
    assert len(validations) == 1  # refused at epoch 5, after its one validation
