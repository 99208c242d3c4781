import pytest

from movierec.config import load_params, parse_params
from movierec.errors import ConfigError


def test_defaults_are_valid():
    params = parse_params({})
    assert params.data.dataset == "ml-100k"
    assert params.data.split.ratios == [0.8, 0.1, 0.1]


def test_project_params_file_is_valid():
    from tests.conftest import ROOT

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
