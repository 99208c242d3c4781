"""Benchmark every model on one data set (same as `movierec bench`). Usage:

    MOVIELENS_MIRROR=../shared/data/movielens python bench/models.py --dataset ml-100k
    MOVIELENS_MIRROR=../shared/data/movielens python bench/models.py --dataset ml-1m-custom \
        --overrides bench/ml-1m.yaml --out bench/results-ml-1m.json
"""

import sys

from movierec.cli import main

if __name__ == "__main__":
    main(["bench", *sys.argv[1:]])
