"""DVC stage `insight`: t-SNE maps of movie vectors and hidden-unit reports (metrics/insight)."""

from pathlib import Path

from movierec.config import load_params
from movierec.dataset import load_processed
from movierec.insight import insight_section, model_unit_report, tsne_map, write_csv
from movierec.similar import movie_vectors
from movierec.stage import run_cli

OUT = Path("metrics/insight")


def main() -> None:
    params = load_params()
    p = insight_section(params)
    data = load_processed()
    for model in ("word2vec", "mf_bias"):
        vectors, has = movie_vectors(model, data, params)
        frame = tsne_map(vectors, has, data, p, params.seed)
        write_csv(frame, OUT / f"tsne_{model}.csv")
        print(f"{model}: t-SNE map of {frame.height} movies -> {OUT}/tsne_{model}.csv")
    for model in ("mlp", "rnn"):
        model_unit_report(model, params, data, p, OUT)
        print(f"{model}: hidden units -> {OUT}/{model}.md")


if __name__ == "__main__":
    run_cli(main)
