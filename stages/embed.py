"""DVC stage `embed`: word2vec movie vectors, their quality, and a leaderboard row (top-N only)."""

from movierec.config import load_params
from movierec.dataset import load_processed
from movierec.embed import evaluate_word2vec, run_embed
from movierec.io import write_json
from movierec.pipeline import EVAL_METRICS, eval_section
from movierec.stage import run_cli


def main() -> None:
    params = load_params()
    eval_params = eval_section(params)
    data = load_processed()
    out = run_embed(params, data)
    summary = out["embed"]
    result = evaluate_word2vec(out["recommender"], data, eval_params)
    write_json("metrics/embed.json", summary)
    write_json(EVAL_METRICS / "word2vec.json", result | {"model": "word2vec"})
    coherence = next(v for k, v in summary.items() if k.startswith("genre_coherence"))
    nm = summary["next_movie"]
    print(
        f"word2vec: {summary['vocabulary']} movies, next-movie hit@10 "
        f"{next(v for k, v in nm.items() if k.startswith('hit')):.4f}, genre coherence "
        f"{coherence['coherence']:.3f} (random {coherence['random']:.3f}), "
        f"{summary['train_seconds']:.1f}s"
    )


if __name__ == "__main__":
    run_cli(main)
