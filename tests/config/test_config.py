from pathlib import Path

import pytest

from movierec.config.params import load_params, parse_params
from movierec.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_valid():
    params = parse_params({})
    assert params.data.dataset == "ml-100k"
    assert params.data.split.ratios == [0.8, 0.1, 0.1]


def test_project_params_file_is_valid():
    params = load_params(ROOT / "params.yaml")
    assert params.data.dataset == "ml-100k"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"data": {"dataset": "ml-5m"}}, "data.dataset"),
        ({"data": {"split": {"ratios": [0.8, 0.3, -0.1]}}}, "data.split.ratios"),
        ({"data": {"split": {"ratios": [0.5, 0.1, 0.1]}}}, "data.split.ratios"),
        ({"data": {"split": {"ratios": [0.8, 0.2]}}}, "data.split.ratios"),
        ({"data": {"split": {"strategy": "leave-one-out"}}}, "data.split.strategy"),
        ({"data": {"split": {"min_user_ratings": "three"}}}, "data.split.min_user_ratings"),
        ({"data": {"sequences": {"length": 0}}}, "data.sequences.length"),
        ({"data": {"sequences": {"pad_item": 3}}}, "data.sequences.pad_item"),
        ({"data": {"datset": "ml-1m"}}, "data.datset"),
        ({"seed": "forty-two"}, "seed"),
        ({"seed": True}, "seed"),
        ({"data": {"dataset": "custom"}}, "data.custom.ratings"),
        ({"data": {"synthetic": {"n_ratings": 10**9}}}, "data.synthetic.n_ratings"),
        ({"data": {"duplicates": "first"}}, "data.duplicates"),
    ],
)
def test_bad_params_name_the_key(raw, key):
    with pytest.raises(ConfigError) as err:
        parse_params(raw)
    assert f"`{key}`" in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_params_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "params.yaml")


def test_invalid_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(path)


def _code_defaults(cls) -> dict:
    import dataclasses

    from movierec.config.params import yaml_key

    return {
        yaml_key(f.name): f.default if f.default is not dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(cls)
    }


def _section(raw: dict, dotted: str):
    for part in dotted.split("."):
        raw = (raw or {}).get(part) or {}
    return raw


def test_code_defaults_and_params_yaml_agree():
    """Defaults live in one place: any value params.yaml sets equals the code's default, so
    tests that build models from code defaults test the model the pipeline runs."""
    import yaml

    from movierec.blend.ensemble import EnsembleParams
    from movierec.config.params import DataParams, SplitParams, SyntheticData
    from movierec.config.sections import TopNBlendParams
    from movierec.evaluation.protocol import EvalParams
    from movierec.models.registry import MODELS, params_key
    from movierec.models.selection import TrainSection
    from movierec.pipeline.embed_step import EmbedParams
    from movierec.serve.insight import InsightParams

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    sections = {params_key(name): pcls for name, (_, pcls) in MODELS.items()}
    sections |= {
        "embed": EmbedParams,
        "evaluate": EvalParams,
        "insight": InsightParams,
        "ensemble": EnsembleParams,
        "ensemble_topn": TopNBlendParams,
        "train": TrainSection,
        "data.split": SplitParams,
        "data.synthetic": SyntheticData,
    }
    mismatches = []
    for key, cls in sections.items():
        defaults = _code_defaults(cls)
        for name, value in _section(raw, key).items():
            if isinstance(value, dict):
                continue
            if defaults.get(name) != value:
                mismatches.append(f"{key}.{name}: code {defaults.get(name)!r}, yaml {value!r}")
    for name in ("dataset", "duplicates"):
        if _code_defaults(DataParams)[name] != raw["data"][name]:
            mismatches.append(f"data.{name}")
    assert not mismatches, "\n".join(mismatches)


def test_unknown_top_level_section_is_rejected_with_the_known_ones():
    with pytest.raises(ConfigError, match=r"`trian` is not a known section; known sections: data"):
        parse_params({"trian": {"models": ["bias"]}})


def _write(folder: Path, params: dict, profiles: dict | None) -> Path:
    import yaml

    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    if profiles is not None:
        (folder / "profiles.yaml").write_text(yaml.safe_dump(profiles))
    return folder / "params.yaml"


PROFILES = {"ml-1m": {"models": {"mf_bias": {"batch_size": 2048}}}}


def test_profile_applies_automatically_by_dataset(tmp_path):
    path = _write(tmp_path, {"data": {"dataset": "ml-1m"}}, PROFILES)
    assert load_params(path).extra["models"]["mf_bias"]["batch_size"] == 2048
    path = _write(tmp_path, {"data": {"dataset": "ml-100k"}}, PROFILES)
    assert "models" not in load_params(path).extra  # no ml-100k profile: params.yaml alone
    path = _write(tmp_path, {"data": {"dataset": "ml-1m", "profile": "none"}}, PROFILES)
    assert "models" not in load_params(path).extra


def test_profile_by_name_for_custom_data_merges_over_params(tmp_path):
    raw = {
        "data": {"dataset": "custom", "profile": "ml-1m", "custom": {"ratings": "r.csv"}},
        "models": {"mf_bias": {"lr": 0.01}},
    }
    params = load_params(_write(tmp_path, raw, PROFILES))
    assert params.extra["models"]["mf_bias"] == {"lr": 0.01, "batch_size": 2048}


def test_bad_profiles_are_one_line_errors(tmp_path):
    raw = {"data": {"dataset": "ml-100k", "profile": "ml-25m"}}
    with pytest.raises(ConfigError, match="`data.profile` is 'ml-25m'.*auto, none, ml-1m"):
        load_params(_write(tmp_path, raw, PROFILES))
    bad = {"ml-1m": {"train": {"models": ["bias"]}}}
    with pytest.raises(ConfigError, match=r"`ml-1m.train` cannot be set by a profile"):
        load_params(_write(tmp_path, {"data": {"dataset": "ml-1m"}}, bad))


def test_the_shipped_profiles_are_valid_and_tracked_by_the_stages_that_read_them():
    import yaml

    from movierec.config.params import PROFILE_SECTIONS
    from movierec.models.registry import model_params

    profiles = yaml.safe_load((ROOT / "profiles.yaml").read_text())
    for name, profile in profiles.items():
        for model, section in profile.get("models", {}).items():
            model_params(model, section)  # every key known, every value in range
        assert set(profile) <= set(PROFILE_SECTIONS), name
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    resolver = stages.pop("profiles")  # the one stage that reads profiles.yaml
    assert {"data.dataset", "data.profile"} <= set(resolver["params"][:2])
    assert "profiles.yaml" in resolver["deps"]  # a file: not 400 params columns
    assert "data/profile.json" in [next(iter(o)) for o in resolver["outs"]]
    for name, stage in stages.items():
        stage = stage.get("do", stage)
        plain = [p for p in stage.get("params", []) if isinstance(p, str)]
        files = [next(iter(p)) for p in stage.get("params", []) if isinstance(p, dict)]
        reads = any(p.split(".")[0] in PROFILE_SECTIONS for p in plain)
        assert reads == ("data/profile.json" in stage["deps"]), name
        assert "profiles.yaml" not in files, name


def test_profile_step_writes_the_active_profile(tmp_path, monkeypatch):
    import json

    from movierec.pipeline import steps

    _write(tmp_path, {"data": {"dataset": "ml-1m"}}, PROFILES)
    monkeypatch.chdir(tmp_path)
    steps.profiles()
    written = json.loads((tmp_path / "data" / "profile.json").read_text())
    assert written == {"profile": "ml-1m", "settings": PROFILES["ml-1m"]}
    _write(tmp_path, {"data": {"dataset": "ml-100k"}}, PROFILES)
    steps.profiles()
    assert json.loads((tmp_path / "data" / "profile.json").read_text()) == {
        "profile": None,
        "settings": {},
    }


@pytest.mark.parametrize(
    ("section", "match"),
    [
        ({"scores": "minmax"}, r"`ensemble_topn.scores` must be zscore or rank \(got 'minmax'\)"),
        ({"floors": [0.0, 1.5]}, r"`ensemble_topn.floors` must list fractions between 0 and 1"),
        ({"floors": []}, r"`ensemble_topn.floors` must list fractions"),
    ],
)
def test_blend_scores_and_floors_are_checked(section, match):
    from movierec.config.sections import topn_blend_section

    with pytest.raises(ConfigError, match=match):
        topn_blend_section(parse_params({"ensemble_topn": section}))
