"""DVC stage `ensemble`: blend the members' val predictions, evaluate like any model, explain errors."""

from movierec.config import load_params
from movierec.ensemble import run_ensemble
from movierec.stage import run_cli


def main() -> None:
    result = run_ensemble(load_params())
    members = result["blend"]["val_rmse_members"]
    best = result["best_member"]
    print(
        f"ensemble of {len(members)}: test RMSE {result['test']['rmse']:.4f} "
        f"(best member by val: {best})"
    )


if __name__ == "__main__":
    run_cli(main)
