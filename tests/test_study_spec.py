"""The study spec: the command-line grammar, TOML, canonical configs and run ids."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest

from initlab.studies import FIELDS, Distribution, Study, load_toml, parse_overrides, run_id

BUDGET = "steps=100"


def ids(study: Study) -> list[str]:
    return [run_id(p) for p in study.points()]


def values(study: Study, *keys: str) -> list[tuple[Any, ...]]:
    return [tuple(p[k] for k in keys) for p in study.points()]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- grammar


def test_a_single_value_is_a_fixed_field() -> None:
    study = parse_overrides(["lr=0.1", "steps=3000", "init=xavier_normal"])
    assert study.fixed == {"lr": 0.1, "steps": 3000, "init": "xavier_normal"}
    assert study.axes == {}
    assert len(study) == 1


def test_comma_lists_make_a_grid_with_the_last_axis_fastest() -> None:
    study = parse_overrides(["init=he_normal,xavier_normal", "lr=0.1,0.01,0.001", BUDGET])
    expected = list(itertools.product(["he_normal", "xavier_normal"], [0.1, 0.01, 0.001]))
    assert values(study, "init", "lr") == expected


def test_parentheses_and_quotes_keep_commas() -> None:
    study = parse_overrides(
        [
            "init=he_normal,'normal(std=0.01)',normal(0.0, 0.5),\"xavier_normal(gain='tanh')\"",
            "data='circles(n=400, noise=0.1)'",
            BUDGET,
        ]
    )
    assert study.axes["init"] == (
        "he_normal",
        "normal(std=0.01)",
        "normal(mean=0.0, std=0.5)",
        "xavier_normal(gain='tanh')",
    )
    assert study.fixed["data"] == "circles(n=400, noise=0.1)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("range(5)", list(range(5))),
        ("range(2,7)", list(range(2, 7))),
        ("range(10,0,-3)", list(range(10, 0, -3))),
        ("range(3),10,range(20,22)", [0, 1, 2, 10, 20, 21]),
    ],
)
def test_range_expands_as_python_range(text: str, expected: list[int]) -> None:
    study = parse_overrides([f"seed={text}", BUDGET])
    assert [p["seed"] for p in study.points()] == expected


def test_model_without_brackets_is_one_net_and_with_brackets_an_axis() -> None:
    one = parse_overrides(["model=2,10,5,1", BUDGET])
    assert one.fixed["model"] == [2, 10, 5, 1]
    assert parse_overrides(["model=[2,10,5,1]", BUDGET]).points() == one.points()
    axis = parse_overrides(["model=[2,10,1],[2, 20, 20, 1]", BUDGET])
    assert [p["model"] for p in axis.points()] == [[2, 10, 1], [2, 20, 20, 1]]


def test_batch_size_full_or_int_and_booleans() -> None:
    study = parse_overrides(["batch_size=full,64,1", "drop_last=true,false", BUDGET])
    assert study.axes == {"batch_size": ("full", 64, 1), "drop_last": (True, False)}


def test_zip_moves_its_fields_together_after_the_grid() -> None:
    study = parse_overrides(
        ["'zip(lr=0.1,0.01; batch_size=64,32)'", "init=he_normal,zeros", "steps=3000"]
    )
    assert values(study, "init", "lr", "batch_size") == [
        ("he_normal", 0.1, 64),
        ("he_normal", 0.01, 32),
        ("zeros", 0.1, 64),
        ("zeros", 0.01, 32),
    ]
    assert study.zips == ({"lr": (0.1, 0.01), "batch_size": (64, 32)},)


def test_the_issue_example_expands_to_the_full_grid() -> None:
    study = parse_overrides(
        [
            "data=circles",
            "model=2,10,5,1",
            "init=he_normal,xavier_normal,normal(std=0.01)",
            "lr=0.1,0.01,0.001",
            "seed=range(5)",
            "batch_size=full,64",
            "steps=3000",
        ]
    )
    assert len(study) == 3 * 3 * 5 * 2
    assert len(set(ids(study))) == len(study)


def test_every_config_has_every_field_and_is_plain_json() -> None:
    (config,) = parse_overrides(["clip=norm", "clip_threshold=5", BUDGET]).points()
    assert list(config) == [f for f in FIELDS if f != "probe_every"]  # None: left out
    assert json.loads(json.dumps(config)) == config
    assert config["clip_threshold"] == 5.0 and isinstance(config["clip_threshold"], float)
    assert config["loss"] == "bce"  # auto: the default net has one output


# --------------------------------------------------------------------------- canonical ids


def test_run_id_is_sha256_of_sorted_compact_json() -> None:
    config = {"lr": 0.1, "init": "he_normal", "model": [2, 1], "tol": None}
    text = '{"init":"he_normal","lr":0.1,"model":[2,1],"tol":null}'
    assert run_id(config) == hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("lr=1", "lr=1.0"),
        ("data=circles(noise=0.1,n=400)", "data='circles(n=400, noise=0.1)'"),
        ("init=normal(0.0, 0.01)", "init=normal(std=0.01,mean=0.0)"),
        ("loss=auto", "loss=bce"),  # one output: auto is bce
        ("clip_threshold=7", "clip=none"),  # no clip: the threshold cannot matter
        ("momentum=0.5", "optimizer=sgd"),  # sgd reads no momentum
        ("steps=1e2", "steps=100"),
    ],
)
def test_configs_that_train_alike_have_one_id(a: str, b: str) -> None:
    assert ids(parse_overrides([a, BUDGET] if "steps" not in a else [a])) == ids(
        parse_overrides([b, BUDGET] if "steps" not in b else [b])
    )


def test_duplicate_points_are_dropped_first_kept() -> None:
    study = parse_overrides(["clip_threshold=0.5,1,2", "clip=none,norm", BUDGET])
    # clip=none makes one run whatever the threshold: 3 + 3 - 2 duplicates.
    assert values(study, "clip_threshold", "clip") == [
        (None, "none"),
        (0.5, "norm"),
        (1.0, "norm"),
        (2.0, "norm"),
    ]


def test_extending_an_axis_keeps_every_old_run_id() -> None:
    small = parse_overrides(["lr=0.1,0.01", "seed=range(3)", BUDGET])
    large = parse_overrides(["lr=0.1,0.01,0.001", "seed=range(5)", BUDGET])
    assert set(ids(small)) < set(ids(large))
    assert len(large) == 15


def test_a_changed_fixed_value_changes_every_run_id() -> None:
    before = parse_overrides(["lr=0.1,0.01", "seed=range(3)", "steps=100"])
    after = parse_overrides(["lr=0.1,0.01", "seed=range(3)", "steps=101"])
    assert not set(ids(before)) & set(ids(after))


# Ids computed by the code before probe_every existed (commit 0397253): the ids of stores
# written then, which must resume as they are.
OLD_IDS = {
    ("steps=100",): "4a474f46e82154bd",
    (
        "data=circles",
        "model=2,16,16,16,1",
        "activation=tanh",
        "init=he_normal",
        "steps=100",
        "lr=0.1",
    ): "6b0937f4abbd1ce5",
}


@pytest.mark.parametrize("args", list(OLD_IDS))
def test_a_run_without_probe_every_keeps_the_id_it_had_before_the_field(
    args: tuple[str, ...],
) -> None:
    for extra in ([], ["probe_every=none"]):
        (config,) = parse_overrides([*args, *extra]).points()
        assert "probe_every" not in config
        assert run_id(config) == OLD_IDS[args]
    (config,) = Study(fixed={"steps": 100, "probe_every": None}).points()
    assert run_id(config) == OLD_IDS[("steps=100",)]


def test_probe_every_is_part_of_the_config_and_id_when_set() -> None:
    study = parse_overrides(["probe_every=none,50,100", BUDGET])
    configs = study.points()
    assert [c.get("probe_every") for c in configs] == [None, 50, 100]
    assert configs[1]["probe_every"] == 50 and isinstance(configs[1]["probe_every"], int)
    assert len(set(ids(study))) == 3
    assert ids(parse_overrides(["probe_every=5e1", BUDGET])) == [ids(study)[1]]


@pytest.mark.parametrize(
    ("value", "error", "words"),
    [
        ("0", ValueError, ["probe_every", "an integer from 1"]),
        ("-5", ValueError, ["an integer from 1"]),
        ("2.5", TypeError, ["an integer from 1", "or none"]),
        ("often", TypeError, ["or none"]),
    ],
)
def test_probe_every_is_checked(value: str, error: type[Exception], words: list[str]) -> None:
    with pytest.raises(error) as raised:
        parse_overrides([f"probe_every={value}", BUDGET])
    for word in words:
        assert word in str(raised.value)


# --------------------------------------------------------------------------- random search


def test_random_search_is_deterministic_and_seeded() -> None:
    args = ["lr=loguniform(1e-4,1)", "init=choice(he_normal,xavier_normal)", BUDGET]
    first = parse_overrides(args, samples=50, seed=3)
    assert first.points() == parse_overrides(args, samples=50, seed=3).points()
    assert ids(first) != ids(parse_overrides(args, samples=50, seed=4))
    assert {p["init"] for p in first.points()} == {"he_normal", "xavier_normal"}


def test_more_samples_keep_the_first_ones() -> None:
    args = ["lr=loguniform(1e-4,1)", "seed=randint(0,1000)", BUDGET]
    assert ids(parse_overrides(args, samples=20))[:10] == ids(parse_overrides(args, samples=10))


def test_a_new_random_field_leaves_the_others_draws_alone() -> None:
    lrs = values(parse_overrides(["lr=loguniform(1e-4,1)", BUDGET], samples=10), "lr")
    more = parse_overrides(["lr=loguniform(1e-4,1)", "momentum=uniform(0,1)", BUDGET], samples=10)
    assert values(more, "lr") == lrs


def test_draws_follow_their_laws() -> None:
    n = 2000
    study = parse_overrides(
        ["lr=loguniform(1e-4,1)", "seed=randint(3,7)", BUDGET],
        samples=n,
    )
    points = study.points()
    logs = [math.log10(p["lr"]) for p in points]
    # log10(lr) ~ U(-4, 0): mean -2, std 4/√12; 0.1 is about 4 standard errors at n = 2000.
    assert all(-4 <= x < 0 for x in logs) and abs(sum(logs) / n + 2) < 0.1
    seeds = [p["seed"] for p in points]
    assert set(seeds) == {3, 4, 5, 6}
    assert all(abs(seeds.count(s) / n - 0.25) < 0.05 for s in range(3, 7))


def test_uniform_draws_a_number_but_is_the_init_scheme_on_init() -> None:
    study = parse_overrides(
        ["optimizer=momentum", "momentum=uniform(0.5,0.9)", "init=uniform(-0.1,0.1)", BUDGET],
        samples=200,
    )
    momenta = [p["momentum"] for p in study.points()]
    assert all(0.5 <= m < 0.9 for m in momenta) and len(set(momenta)) == 200
    assert study.fixed["init"] == "uniform(a=-0.1, b=0.1)"


def test_distribution_draw_is_the_inverse_cdf() -> None:
    assert Distribution("uniform", (2.0, 4.0)).draw(0.25) == 2.5
    assert Distribution("loguniform", (1e-4, 1.0)).draw(0.75) == pytest.approx(0.1)
    assert [Distribution("randint", (0, 3)).draw(u) for u in (0, 0.34, 0.67, 0.999)] == [
        0,
        1,
        2,
        2,
    ]


# --------------------------------------------------------------------------- TOML


def test_toml_equals_the_command_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        description = "the issue's example"
        [fixed]
        data = "circles"
        model = [2, 10, 5, 1]
        steps = 3000
        [axes]
        init = ["he_normal", "xavier_normal", "normal(std=0.01)"]
        lr = [0.1, 0.01, 0.001]
        seed = "range(5)"
        [axes.zip]
        batch_size = ["full", 64]
        clip = ["none", "norm"]
        """,
    )
    cli = parse_overrides(
        [
            "data=circles",
            "model=2,10,5,1",
            "init=he_normal,xavier_normal,'normal(std=0.01)'",
            "lr=0.1,0.01,0.001",
            "seed=range(5)",
            "zip(batch_size=full,64; clip=none,norm)",
            "steps=3000",
        ]
    )
    study = load_toml(path)
    assert ids(study) == ids(cli)
    assert study.description == "the issue's example"


def test_toml_random_search_and_several_zip_groups(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        samples = 6
        seed = 11
        [fixed]
        steps = 100
        [axes]
        lr = "loguniform(1e-4, 1)"
        model = [[2, 10, 1], [2, 5, 1]]
        [[axes.zip]]
        init = ["he_normal", "zeros"]
        seed = [1, 2]
        [[axes.zip]]
        batch_size = [8, 16]
        """,
    )
    cli = parse_overrides(
        [
            "steps=100",
            "lr=loguniform(1e-4, 1)",
            "model=[2,10,1],[2,5,1]",
            "zip(init=he_normal,zeros; seed=1,2)",
            "zip(batch_size=8,16)",
        ],
        samples=6,
        seed=11,
    )
    assert ids(load_toml(path)) == ids(cli)
    assert len(cli) == 2 * 2 * 2 * 6


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("args", "error", "words"),
    [
        (["stpes=100"], ValueError, ["unknown field 'stpes'", "Did you mean 'steps'", "Known:"]),
        (["lr=abc", BUDGET], TypeError, ["'lr=abc'", "expected a finite number > 0", "'abc'"]),
        (["lr=-1", BUDGET], ValueError, ["expected a finite number > 0", "-1"]),
        (["steps=1.5"], TypeError, ["expected an integer"]),
        (["init=1", BUDGET], TypeError, ["init spec"]),
        (["data=3", BUDGET], TypeError, ["data set"]),
        (["init=he_norml", BUDGET], ValueError, ["Did you mean 'he_normal'"]),
        (["init=he_normal,xavier_norml", BUDGET], ValueError, ["'xavier_norml'"]),
        (["activation=rleu", BUDGET], ValueError, ["Did you mean 'relu'"]),
        (["data=circles(nosie=1)", BUDGET], ValueError, ["Did you mean 'noise'"]),
        (["schedule=step_decay(-1)", BUDGET], ValueError, ["schedule"]),
        (["seed=range(0)", BUDGET], ValueError, ["empty"]),
        (["seed=range(5,1)", BUDGET], ValueError, ["empty"]),
        (["lr=0.1,,0.2", BUDGET], ValueError, ["empty value"]),
        (["lr=", BUDGET], ValueError, ["empty value"]),
        (["lr=range(3)", BUDGET], ValueError, ["range(…) makes integers"]),
        (["seed=loguniform(1,10)", BUDGET], ValueError, ["does not apply to seed"]),
        (["lr=loguniform(0,1)", BUDGET], ValueError, ["finite number > 0"]),
        (["lr=uniform(0.5,0.1)", BUDGET], ValueError, ["a < b"]),
        (["lr=loguniform(1e-4,1)", BUDGET], ValueError, ["expected samples"]),
        (["lr=0.1", "lr=0.2", BUDGET], ValueError, ["given twice"]),
        (["zip(lr=0.1,0.01; seed=1)", BUDGET], ValueError, ["same number of values"]),
        (["zip(lr=0.1,0.2)", "lr=0.3", BUDGET], ValueError, ["given twice"]),
        (["init=normal(std=0.01", BUDGET], ValueError, ["balanced"]),
        (["lr"], ValueError, ["expected key=value"]),
        (["model=2", BUDGET], ValueError, ["at least two widths"]),
        (["model=2-10-1", BUDGET], TypeError, ["model=2,10,5,1"]),
        (["batch_size=0", BUDGET], ValueError, ["'full'"]),
        (["batch_size=half", BUDGET], ValueError, ["'full'"]),
        (["lr=0.1"], ValueError, ["expected a budget"]),
        (["loss=bce", "model=2,10,3", BUDGET], ValueError, ["loss 'bce' takes one output"]),
        (["seed=range(2000)", "lr=range(1,1001)", BUDGET], ValueError, ["range(…) makes"]),
        (["seed=range(2000)", "steps=range(1,1001)"], ValueError, ["at most 1,000,000 runs"]),
    ],
)
def test_bad_overrides_fail_before_anything_runs(
    args: list[str], error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as raised:
        parse_overrides(args)
    for word in words:
        assert word in str(raised.value)


def test_samples_without_a_random_field_is_an_error() -> None:
    with pytest.raises(ValueError, match="every sample would be the same run"):
        parse_overrides(["lr=0.1,0.2", BUDGET], samples=5)


def test_a_string_is_not_a_list_of_tokens() -> None:
    with pytest.raises(TypeError, match="key=value tokens"):
        parse_overrides("lr=0.1")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "error", "words"),
    [
        ("sample = 3\n", ValueError, ["unknown key 'sample'", "Did you mean 'samples'", "Known:"]),
        ("[fixed]\nlrr = 0.1\n", ValueError, ["unknown field 'lrr'", "Did you mean 'lr'"]),
        ("[axes]\nlr = []\n[fixed]\nsteps = 1\n", ValueError, ["empty axis"]),
        ('[fixed]\nsteps = "100"\n', TypeError, ["expected an integer"]),
        ("[axes]\nlr = 0.1\n[fixed]\nsteps = 1\n", TypeError, ["a list of values"]),
        ("[axes]\nmodel = [2, 10, 1]\n[fixed]\nsteps = 1\n", TypeError, ["a list of nets"]),
        (
            '[axes]\ninit = ["he_normal", "kaiming_nromal"]\n[fixed]\nsteps = 1\n',
            ValueError,
            ["Did you mean 'kaiming_normal'"],
        ),
        ("[fixed]\nlr = 0.1\nsteps = 1\n[axes]\nlr = [0.2, 0.3]\n", ValueError, ["given twice"]),
        (
            "[fixed]\nsteps = 1\n[axes.zip]\nlr = [0.1]\nseed = [1, 2]\n",
            ValueError,
            ["same number of values"],
        ),
        ("[fixed\n", ValueError, ["expected a TOML study file"]),
        ("samples = 4\n[fixed]\nsteps = 1\n", ValueError, ["every sample would be the same"]),
    ],
)
def test_bad_toml_fails_with_a_clear_message(
    tmp_path: Path, text: str, error: type[Exception], words: list[str]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(error) as raised:
        load_toml(path)
    for word in words:
        assert word in str(raised.value)


def test_a_study_built_directly_is_checked_and_canonical() -> None:
    study = Study(fixed={"steps": 10, "lr": 1}, axes={"seed": range(2)})
    assert study.fixed["lr"] == 1.0 and study.axes["seed"] == (0, 1)
    with pytest.raises(ValueError, match="set twice"):
        Study(fixed={"steps": 10, "lr": 0.1}, axes={"lr": (0.2,)})
    with pytest.raises(ValueError, match="does not apply"):
        Study(fixed={"steps": 10}, random={"init": Distribution("uniform", (0, 1))}, samples=2)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"samples": 0}, ValueError, ["samples: an integer from 1"]),
        ({"samples": "3"}, TypeError, ["samples: an integer from 1"]),
        ({"samples": 3, "seed": -1}, ValueError, ["the study's seed"]),
        ({"samples": 3, "seed": 1.5}, TypeError, ["the study's seed"]),
    ],
)
def test_bad_samples_and_seed(
    kwargs: dict[str, Any], error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as raised:
        parse_overrides(["lr=loguniform(1e-4,1)", BUDGET], **kwargs)
    for word in words:
        assert word in str(raised.value)


def test_a_cross_field_error_names_the_run() -> None:
    with pytest.raises(ValueError, match=r"the run model=\[2, 10, 3\]: loss 'bce'"):
        parse_overrides(["loss=bce", "model=[2,10,1],[2,10,3]", BUDGET])


def test_the_docs_list_every_field_with_its_default() -> None:
    # docs/studies.md's table: one row per field, its default as the code has it.
    text = (Path(__file__).parents[1] / "docs" / "studies.md").read_text(encoding="utf-8")
    rows = {
        cells[0].strip("` "): cells[1].strip("` ")
        for line in text.splitlines()
        if line.startswith("| `") and len(cells := line.strip("|").split("|")) == 4
    }
    assert set(rows) == set(FIELDS)
    shown = {None: "none", False: "false"}
    for name, f in FIELDS.items():
        default = f.default
        expected = shown.get(default) if default is None or default is False else str(default)
        assert rows[name] == expected, (name, rows[name], expected)
