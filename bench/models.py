"""Benchmark every model on one data set (same as `movierec bench`). Usage:

    MOVIELENS_MIRROR=../shared/data/movielens python bench/models.py --dataset ml-100k
    MOVIELENS_MIRROR=../shared/data/movielens python bench/models.py --dataset ml-1m-custom \
        --out bench/results-ml-1m.json     # profiles.yaml's ml-1m settings apply by themselves
"""

import sys

from movierec.cli import main

if __name__ == "__main__":
    main(["bench", *sys.argv[1:]])
