"""``python -m movierec``: the CLI, so ``torchrun -m movierec train <model>`` works."""

from movierec.cli import main

if __name__ == "__main__":
    main()
