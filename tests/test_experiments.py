"""initlab.experiments: the member grid, a run's size, losses, labelled histories, factories.

References are independent of the code: hand counts, :func:`itertools.product`, the
TrainResult's own tensors read cell by cell, and the loss formulas written out in float64.
"""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from initlab import data, models
from initlab.experiments import (
    AXES,
    FactoryError,
    Grid,
    infer_loss,
    labelled_history,
    load_factory,
    loss_function,
    member_grid,
    step_budget,
    training_bytes,
)
from initlab.train import MemberResult, TrainConfig, TrainResult, train

# ----------------------------------------------------------------------------- the grid

INITS = ["he_normal", "zeros", "normal(std=10)"]
OPTIMIZERS = ["sgd", "adam"]
THRESHOLDS = [0.5, 5.0]


def _grid() -> Grid:
    return member_grid(
        init=INITS, seed=range(2), lr=[0.05], optimizer=OPTIMIZERS, clip_threshold=THRESHOLDS
    )


def test_the_grid_is_every_combination_the_last_axis_fastest() -> None:
    grid = _grid()
    assert len(grid) == 3 * 2 * 1 * 2 * 2  # a hand count: 24 members
    expected = list(itertools.product(INITS, [0, 1], [0.05], OPTIMIZERS, THRESHOLDS))
    assert [tuple(m.values.values()) for m in grid] == expected
    assert [m.index for m in grid] == list(range(24))
    assert list(grid[0].values) == ["init", "seed", "lr", "optimizer", "clip_threshold"]
    # Written out: member 5 is he_normal, seed 1, sgd, clip 5 (0-based: 0·8 + 1·4 + 0·2 + 1).
    assert grid[5].values == {
        "init": "he_normal",
        "seed": 1,
        "lr": 0.05,
        "optimizer": "sgd",
        "clip_threshold": 5.0,
    }
    assert grid[5]["optimizer"] == "sgd"


def test_the_grid_names_what_varies_and_labels_each_member() -> None:
    grid = _grid()
    assert grid.varying() == ["init", "seed", "optimizer", "clip_threshold"]  # one lr
    assert member_grid(lr=[0.1, 0.1]).varying() == []  # a repeated value does not vary
    assert grid.labels()[5] == "he_normal s1 lr0.05 sgd clip5"
    assert grid.labels(["init", "seed", "lr", "optimizer"])[-1] == "normal(std=10) s1 lr0.05 adam"
    assert grid[0].label(["lr"]) == "lr0.05"


def test_the_grid_gives_each_members_train_config_and_init_arguments() -> None:
    grid = _grid()
    members = list(itertools.product(INITS, [0, 1], [0.05], OPTIMIZERS, THRESHOLDS))
    fields = grid.train_fields()
    assert fields == {
        "seeds": [m[1] for m in members],
        "lr": [m[2] for m in members],
        "optimizer": [m[3] for m in members],
        "clip_threshold": [m[4] for m in members],
    }
    assert grid.init_fields() == {
        "weight": [m[0] for m in members],
        "seeds": [m[1] for m in members],
    }
    config = TrainConfig(steps=1, **fields)
    assert config.per_member("optimizer", 24) == [m[3] for m in members]
    bias = member_grid(bias_init=["zeros", "constant(0.01)"], schedule=["constant"])
    assert bias.init_fields() == {"bias": ["zeros", "constant(0.01)"]}
    assert bias.train_fields() == {"schedule": ["constant", "constant"]}


def test_the_grids_init_fields_initialize_each_member_as_alone() -> None:
    grid = member_grid(init=["he_normal", "xavier_uniform"], seed=[3, 7])
    stack = models.mlp([4, 6, 2], members=len(grid), dtype=torch.float64)
    models.init_members(stack, **grid.init_fields())
    for m, member in enumerate(grid):
        # torch's own initializer, with the member's seed, is the reference.
        reference = torch.empty(6, 4, dtype=torch.float64)
        generator = torch.Generator().manual_seed(member["seed"])
        if member["init"] == "he_normal":
            nn.init.kaiming_normal_(reference, nonlinearity="relu", generator=generator)
        else:
            nn.init.xavier_uniform_(reference, generator=generator)
        assert torch.equal(stack.layers[0].weight[m], reference), member.values


@settings(max_examples=50, deadline=None)
@given(sizes=st.lists(st.integers(1, 4), min_size=1, max_size=len(AXES)))
def test_any_grid_matches_itertools_product(sizes: list[int]) -> None:
    axes = {name: [f"{name}{i}" for i in range(n)] for name, n in zip(AXES, sizes, strict=False)}
    grid = member_grid(**axes)
    assert len(grid) == math.prod(sizes)
    combos = list(itertools.product(*axes.values()))
    assert [tuple(m.values.values()) for m in grid] == combos
    for position, name in enumerate(axes):
        assert grid.column(name) == [combo[position] for combo in combos]


def test_a_bad_axis_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"'sede' parameter .* an axis, .* Did you mean 'seed'\?"):
        member_grid(sede=[0])
    with pytest.raises(TypeError, match=r"a sequence of values.* Give init=\['he_normal'\]"):
        member_grid(init="he_normal")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a sequence of values"):
        member_grid(lr=0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one value. Got"):
        member_grid(lr=[])
    with pytest.raises(ValueError, match=r"'axis' parameter of Grid.column .* Did you mean 'lr'"):
        member_grid(lr=[0.1]).column("lrr")


# ----------------------------------------------------------------------------- a run's size


def test_the_step_budget_is_the_smaller_of_the_budgets() -> None:
    # 800 examples in batches of 64: 12 full batches and one of 32, or 12 with drop_last.
    assert step_budget(None, 3, 800, 64) == 3 * 13
    assert step_budget(None, 3, 800, 64, drop_last=True) == 3 * 12
    assert step_budget(20, 3, 800, 64) == 20
    assert step_budget(100, 3, 800) == 3  # the full batch: one step an epoch
    assert step_budget(None, 2, 800, 1) == 1600  # SGD: one step an example
    assert step_budget(7, None, 800, 64) == 7
    assert step_budget(None, None, 800) == 0


def test_the_step_budget_is_the_engines() -> None:
    ds = data.load("circles", n=100, seed=0)
    for batch_size, drop_last in (("full", False), (16, False), (16, True), (1, False)):
        config = TrainConfig(loss="bce", epochs=2, batch_size=batch_size, drop_last=drop_last)
        net = models.mlp([2, 3, 1], members=1)
        result = train(net, ds, config)
        assert result.total_steps == step_budget(None, 2, ds.n_train, batch_size, drop_last)


def test_training_bytes_is_the_hand_count() -> None:
    # 2-10-5-1: (2·10 + 10) + (10·5 + 5) + (5·1 + 1) = 91 numbers a member; 3 members.
    weights = 3 * 91
    activations = 3 * 64 * (10 + 5 + 1)  # each member's activations for 64 examples
    expected = (4 * weights + 3 * activations) * 4  # float32
    assert training_bytes([2, 10, 5, 1], members=3, rows=64, itemsize=4) == expected


# ----------------------------------------------------------------------------- losses


def test_auto_is_resolved_from_the_outputs_and_the_labels() -> None:
    assert infer_loss("auto", outputs=1) == "bce"
    assert infer_loss("auto", outputs=10) == "cross_entropy"
    assert infer_loss("auto") == "cross_entropy"  # outputs not known yet
    assert infer_loss("auto", outputs=1, labelled=False) == "none"
    assert infer_loss("mse", outputs=1) == "mse"  # a name given is kept
    with pytest.raises(ValueError, match="Did you mean 'bce'"):
        infer_loss("bc")


# float64 throughout; the largest relative difference between each loss and its written-out
# formula, measured (seeds 0-199) under the default (AVX-512) and the AVX2 kernels with
# OMP_NUM_THREADS=1 and 2: 3.5e-16, the same in all four. The tolerance is 1e-13.
_REL = 1e-13


def test_each_loss_is_its_formula() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 5, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 5, (32,), generator=generator)
    rows = torch.arange(32)
    log_softmax = logits - logits.exp().sum(dim=1, keepdim=True).log()
    cross_entropy = -log_softmax[rows, labels].mean()
    one_hot = torch.zeros(32, 5, dtype=torch.float64)
    one_hot[rows, labels] = 1.0
    mse = ((logits - one_hot) ** 2).mean()
    logit = logits[:, :1]
    binary = labels % 2
    p = 1 / (1 + (-logit[:, 0]).exp())
    bce = -(binary * p.log() + (1 - binary) * (1 - p).log()).mean()
    targets = torch.randn(32, generator=generator, dtype=torch.float64)
    regression = ((logit[:, 0] - targets) ** 2).mean()
    for name, output, target, expected in (
        ("cross_entropy", logits, labels, cross_entropy),
        ("mse", logits, labels, mse),
        ("mse", logit, targets, regression),
        ("bce", logit, binary, bce),
    ):
        fn = loss_function(name)
        assert fn is not None
        assert fn(output, target).item() == pytest.approx(expected.item(), rel=_REL), name
    assert loss_function("none") is None
    with pytest.raises(ValueError, match="'name' parameter of loss_function"):
        loss_function("auto")


# ----------------------------------------------------------------------------- histories


def _result(grid: Grid, steps: list[int]) -> TrainResult:
    """A TrainResult of known numbers: cell (s, m) of each history holds its own value."""
    s, m = len(steps), len(grid)
    cells = torch.arange(s * m, dtype=torch.float32).reshape(s, m)
    return TrainResult(
        members=tuple(
            MemberResult(i, {}, "budget", steps[-1] + 1, 0.0, None, None) for i in range(m)
        ),
        steps=torch.tensor(steps),
        loss=cells + 0.25,
        grad_norm=cells + 0.5,
        clipped=(cells.long() % 3 == 0),
        lr=cells / 64,
        epoch_loss=torch.zeros(0, m),
        eval_steps=torch.zeros(0, dtype=torch.long),
        train_accuracy=torch.zeros(0, m),
        test_accuracy=torch.zeros(0, m),
        interrupted=False,
        seconds=0.0,
        total_steps=steps[-1] + 1,
    )


def test_the_labelled_history_is_the_results_tensors_beside_each_members_values() -> None:
    grid = member_grid(init=["he_normal", "zeros"], seed=range(2), lr=[0.1, 0.2])
    steps = [0, 10, 20, 29]
    result = _result(grid, steps)
    frame = labelled_history(result, grid)
    assert list(frame.columns) == [
        "member", "step", "loss", "grad_norm", "clipped", "lr",  # the result's own
        "init", "seed", "base_lr",  # the grid's axes; lr is the member's initial rate
    ]  # fmt: skip
    assert len(frame) == len(steps) * len(grid)
    seen = set()
    for row in frame.itertuples(index=False):
        s, m = steps.index(row.step), row.member
        seen.add((s, m))
        assert row.loss == result.loss[s, m].item()
        assert row.grad_norm == result.grad_norm[s, m].item()
        assert row.clipped == result.clipped[s, m].item()
        assert row.lr == result.lr[s, m].item()
        assert (row.init, row.seed, row.base_lr) == (
            grid[m]["init"],
            grid[m]["seed"],
            grid[m]["lr"],
        )
    assert len(seen) == len(frame)  # every (step, member) once
    assert frame["seed"].dtype == "int64" and frame["base_lr"].dtype == "float64"


def test_the_labelled_history_takes_the_axes_asked_for() -> None:
    grid = member_grid(seed=range(2), clip_threshold=[0.1, 10.0])
    frame = labelled_history(_result(grid, [0, 1]), grid, ["seed"])
    assert list(frame.columns)[6:] == ["seed"]
    with pytest.raises(ValueError, match="Did you mean 'seed'"):
        labelled_history(_result(grid, [0, 1]), grid, ["sed"])
    with pytest.raises(ValueError, match="run's 4 members. Got a grid of 2 instead"):
        labelled_history(_result(grid, [0, 1]), member_grid(seed=range(2)))


def test_a_real_runs_history_keeps_each_steps_scheduled_lr() -> None:
    grid = member_grid(seed=[0], lr=[0.1, 0.2])
    ds = data.load("circles", n=100, seed=0)
    net = models.mlp([2, 4, 1], members=len(grid))
    config = TrainConfig(loss="bce", steps=5, schedule="exponential(0.5)", **grid.train_fields())
    frame = labelled_history(train(net, ds, config), grid)
    # Full batch: every step is an epoch, so step k runs at base_lr · 0.5^k, rounded to
    # float32 (the engine's dtype): relative error below 2^-24 ≈ 6e-8; measured 1.5e-8
    # under AVX-512 and AVX2, 1 and 2 threads.
    expected = frame["base_lr"] * 0.5 ** frame["step"]
    assert frame["lr"].to_numpy() == pytest.approx(expected.to_numpy(), rel=1e-7)
    assert sorted(frame["base_lr"].unique()) == [0.1, 0.2] and len(frame) == 10


# ----------------------------------------------------------------------------- factories

_NETS = """
from torch import nn

shared = nn.Linear(2, 2)
not_a_model = {"a": 1}

def net(width=4, activation="relu"):
    act = {"relu": nn.ReLU(), "tanh": nn.Tanh()}[activation]
    return nn.Sequential(nn.Linear(3, width), act, nn.Linear(width, 1))

def broken():
    return {}["missing"]

def not_a_net():
    return 42
"""


@pytest.fixture
def nets(tmp_path: Path) -> str:
    path = tmp_path / "nets.py"
    path.write_text(_NETS)
    return str(path)


def test_a_factory_is_called_with_its_literal_arguments(nets: str) -> None:
    model = load_factory(f"{nets}:net(width=7, activation='tanh')")
    assert isinstance(model, nn.Sequential)
    assert model[0].out_features == 7 and isinstance(model[1], nn.Tanh)
    assert load_factory(f"{nets}:net")[0].out_features == 4  # a bare name: called without args
    first, second = load_factory(f"{nets}:shared"), load_factory(f"{nets}:shared")
    assert isinstance(first, nn.Linear) and isinstance(second, nn.Linear)  # a module as it is
    linear = load_factory("torch.nn:Linear(3, 2)")  # an importable module
    assert isinstance(linear, nn.Linear) and tuple(linear.weight.shape) == (2, 3)


def test_a_module_is_imported_from_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "h3_local_nets.py").write_text(_NETS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "h3_local_nets", raising=False)
    assert isinstance(load_factory("h3_local_nets:net"), nn.Sequential)


@pytest.mark.parametrize(
    ("target", "error", "fragments"),
    [
        ("deep_mlp", ValueError, ["expected MODULE:FACTORY", "Got 'deep_mlp'."]),
        (":net", ValueError, ["expected MODULE:FACTORY", "Got ':net'."]),
        ("{nets}:", ValueError, ["expected MODULE:FACTORY"]),
        ("{nets}:net(width=w)", ValueError, ["bare name w", "Write 'w' in quotes"]),
        ("{nets}:net(width=4", ValueError, ["Factory call 'net(width=4'", "not of the form"]),
        ("{nets}:nothing", ValueError, ["has no attribute 'nothing'. It has: broken, net"]),
        ("{nets}:not_a_model", TypeError, ["an nn.Module or return one. Got dict."]),
        ("{nets}:not_a_net", TypeError, ["an nn.Module or return one. Got int."]),
        ("{tmp}/none.py:net", FileNotFoundError, ["cannot import", "no file", "a .py file."]),
        ("no_such_module_h3:net", ImportError, ["cannot import 'no_such_module_h3': No module"]),
    ],
)
def test_a_bad_target_is_a_clear_error(
    target: str, error: type[Exception], fragments: list[str], nets: str, tmp_path: Path
) -> None:
    with pytest.raises(error) as raised:
        load_factory(target.format(nets=nets, tmp=tmp_path))
    for fragment in fragments:
        assert fragment in str(raised.value), (fragment, str(raised.value))
    if error is ImportError:
        assert isinstance(raised.value.__cause__, ModuleNotFoundError)


@pytest.mark.parametrize(
    ("source", "call", "what", "cause"),
    [
        ("def net(:\n    pass\n", "net", "importing '{path}'", SyntaxError),
        ("undefined_name\n", "net", "importing '{path}'", NameError),
        (_NETS, "broken()", "the factory 'broken()' of '{path}'", KeyError),
    ],
    ids=["syntax", "import", "factory"],
)
def test_the_users_own_failing_code_is_a_factory_error(
    source: str, call: str, what: str, cause: type[Exception], tmp_path: Path
) -> None:
    path = tmp_path / "failing.py"
    path.write_text(source)
    with pytest.raises(FactoryError) as raised:
        load_factory(f"{path}:{call}")
    assert raised.value.what == what.format(path=path)
    assert type(raised.value.error) is cause and raised.value.__cause__ is raised.value.error
    assert str(raised.value).startswith(f"{raised.value.what} raised {cause.__name__}: ")


# ----------------------------------------------------------------------------- the package


def test_the_package_lists_every_library_module() -> None:
    import pkgutil

    import initlab

    # every public module of the package but its front ends (report, lessons, the
    # playground, the command)
    found = {m.name for m in pkgutil.iter_modules(initlab.__path__)}
    # (and its integrations with other packages' loops, optional extras: lightning)
    fronts = {"cli", "lessons", "playground", "report", "lightning"}
    expected = {n for n in found if not n.startswith("_")} - fronts
    assert {"clip", "data", "init", "probe", "train"} <= expected  # the engine was missing
    assert set(initlab.__all__) == expected | {"__version__"}
    for name in expected:
        assert getattr(initlab, name).__name__ == f"initlab.{name}"


def test_a_factory_file_leaves_packages_of_other_path_entries_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a project's own .venv sits inside the factory's folder: its packages are not the
    # factory's siblings, and must not be imported twice
    site = tmp_path / "site"
    (site / "sidepkg").mkdir(parents=True)
    (site / "sidepkg" / "__init__.py").write_text("REGISTRY = []\n")
    (tmp_path / "net.py").write_text(
        "import sidepkg\nimport torch\nsidepkg.REGISTRY.append(1)\n"
        "def net():\n    return torch.nn.Linear(2, 1)\n"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "sidepkg", raising=False)
    load_factory(f"{tmp_path / 'net.py'}:net")
    import sidepkg  # type: ignore[import-not-found]

    assert sidepkg.REGISTRY == [1]
    monkeypatch.delitem(sys.modules, "sidepkg", raising=False)
