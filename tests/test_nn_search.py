"""Hyperparameter search (nn.search: strategies, Optuna study and pruners, space, genetic operators, plots)."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pytest

import analysis.core.config as config_module
from analysis.core.config import (
    ConfigError,
    SearchDimension,
    config_from_dict,
    default_config,
)
from nn.data import read_feature_store
from nn.search import (
    STRATEGIES,
    ResultsTable,
    SearchError,
    hyperband_brackets,
    leaderboard,
    main,
    run_search,
    run_trial,
)
from nn.search.bayesian import STUDY_FILE, STUDY_NAME
from nn.search.genetic import crossover, mutate, next_generation, select_parents
from nn.search.pruning import Pruned, PruningReporter
from nn.search.regularisation import run_regularisation_study
from nn.search.space import (
    apply_hyperparameters,
    grid_configurations,
    sample_configuration,
    trial_key,
    trial_seed,
)
from nn.train import train_classifier
from tests.synthetic import write_synthetic_store

SPACE = {
    "width": {"type": "choice", "values": [8, 16]},
    "learning_rate": {"type": "choice", "values": [0.003, 0.01]},
    "activation": {"type": "choice", "values": ["relu", "tanh"]},
}


def search_config(space=None, **search):
    """A tiny config: 2-epoch training of small single networks (the default averages five), the
    given search section."""
    data = default_config().model_dump(mode="json")
    data["training"].update(max_epochs=2, batch_size=256, patience=2)
    data["model"].update(hidden_layers=[8], dropout=0.0, ensemble_members=1)
    data["search"].update(space=space or SPACE, seed=7, **search)
    return config_from_dict(data, source="tests")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_synthetic_store(
        tmp_path_factory.mktemp("search") / "store", n_signal=250, n_background=600,
        grid=((100.0, 10.0), (200.0, 40.0)), parts_per_dataset=1, seed=3,
    )


# ------------------------------------------------------------------ config and space


@pytest.mark.parametrize(
    "space, message",
    [
        ({"depth": {"type": "int", "low": 1, "high": 3}}, "space.depth: unknown hyperparameter"),
        ({"learning_rate": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}, "log range needs low > 0"),
        ({"activation": {"type": "choice", "values": ["relu", "swish"]}}, "space.activation: unknown value(s) ['swish']"),
        ({"width": {"type": "float", "low": 8, "high": 64}}, "space.width: must be integers"),
        ({"dropout": {"type": "float", "low": 0.5, "high": 0.1}}, "low (0.5) must be <= high (0.1)"),
        ({"dropout": {"type": "float", "low": 0.0, "high": 1.0}}, "space.dropout: must lie in [0, 1)"),
        ({"optimizer": {"type": "choice", "values": []}}, "non-empty 'values'"),
    ],
)
def test_bad_search_space_is_refused_naming_the_field(space, message):
    with pytest.raises(ConfigError) as error:
        search_config(space)
    assert "search.space" in str(error.value) and message in str(error.value)


def test_bad_genetic_budget_is_refused():
    with pytest.raises(ConfigError, match=r"search: .*parents \(9\) must be <= population \(4\)"):
        search_config(population=4, parents=9)


def test_sampling_seeds_keys_and_applying_a_trial():
    space = search_config({"layers": {"type": "int", "low": 1, "high": 3}, "width": {"type": "int", "low": 4, "high": 256, "log": True},
                           "l2": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True}, "loss": {"type": "choice", "values": ["bce", "focal"]}}).search.space
    draws = [sample_configuration(space, np.random.default_rng(5)) for _ in range(2)]
    assert draws[0] == draws[1]  # same generator seed, same configuration
    many = [sample_configuration(space, np.random.default_rng(i)) for i in range(200)]
    assert {c["layers"] for c in many} == {1, 2, 3} and {c["loss"] for c in many} == {"bce", "focal"}
    assert all(4 <= c["width"] <= 256 and isinstance(c["width"], int) and 1e-6 <= c["l2"] <= 1e-2 for c in many)
    assert trial_seed(7, 0) == trial_seed(7, 0) != trial_seed(7, 1) != trial_seed(8, 1)
    assert trial_key({"a": 1}, 3, 2) == trial_key({"a": 1}, 3, 2) != trial_key({"a": 1}, 3, 4)
    config = apply_hyperparameters(search_config(), {"layers": 3, "width": 16, "loss": "focal", "learning_rate": 0.02}, seed=11, epochs=5)
    assert config.model.hidden_layers == [16, 16, 16] and config.training.loss == "focal"
    assert (config.training.learning_rate, config.training.seed, config.training.max_epochs) == (0.02, 11, 5)


def test_every_search_parameter_reaches_the_config():
    values = {"layers": 2, "width": 12, "activation": "tanh", "dropout": 0.2, "l1": 1e-4, "l2": 1e-3,
              "learning_rate": 0.02, "optimizer": "adam", "batch_size": 128, "loss": "focal"}
    assert set(values) == set(config_module.SEARCH_PARAMETERS)
    config = apply_hyperparameters(search_config(), values, seed=3, epochs=4)
    assert config.model.hidden_layers == [12, 12]
    for name, value in values.items():
        if name not in ("layers", "width"):
            section = config.model if name in type(config.model).model_fields else config.training
            assert getattr(section, name) == value, name


# ------------------------------------------------------------------ genetic operators

GENES = {
    "w": SearchDimension(type="choice", values=[8, 16, 32, 64]),
    "act": SearchDimension(type="choice", values=["relu", "tanh", "elu"]),
    "lr": SearchDimension(type="float", low=1e-4, high=1e-1, log=True),
    "l": SearchDimension(type="int", low=1, high=4),
}
A = {"w": 8, "act": "relu", "lr": 0.1, "l": 1}
B = {"w": 64, "act": "tanh", "lr": 0.001, "l": 3}


def test_selection_takes_the_top_k_and_puts_failed_trials_last():
    population = [{"i": 0}, {"i": 1}, {"i": 2}, {"i": 3}, {"i": 4}]
    assert select_parents(population, [0.5, float("nan"), 0.9, 0.5, 0.7], 3) == [{"i": 2}, {"i": 4}, {"i": 0}]
    assert select_parents(population, [float("nan")] * 4 + [0.1], 2) == [{"i": 4}, {"i": 0}]


def test_crossover_with_a_fixed_seed():
    # default_rng(0).random() draws 0.637, 0.270, 0.041, 0.017: gene 1 from B (>= 0.5), the rest from A
    assert crossover(A, B, np.random.default_rng(0)) == {"w": 64, "act": "relu", "lr": 0.1, "l": 1}


def test_mutation_with_a_fixed_seed():
    assert mutate(A, GENES, 0.0, np.random.default_rng(1)) == A
    # default_rng(1): 0.512 (w kept), 0.950 (act kept), 0.144 (lr redrawn), ... (l redrawn)
    child = mutate(A, GENES, 0.5, np.random.default_rng(1))
    assert (child["w"], child["act"]) == (8, "relu")
    assert child["lr"] == pytest.approx(0.0701371866) and child["l"] == 4
    always = mutate(A, GENES, 1.0, np.random.default_rng(2))
    assert all(GENES["lr"].low <= always["lr"] <= GENES["lr"].high for _ in [0]) and always != A


def test_next_generation_keeps_parents_and_breeds_children_from_them():
    population = [dict(A, l=i % 4 + 1, w=[8, 16, 32, 64][i % 4]) for i in range(6)]
    parents, children = next_generation(population, [1, 6, 3, 5, 2, 4], GENES, 6, 3, 0.0, np.random.default_rng(0), attempts=1)
    assert parents == [population[1], population[3], population[5]]
    assert len(children) == 3
    for child in children:  # without mutation every gene comes from a parent
        assert all(any(child[g] == p[g] for p in parents) for g in GENES)
    # with the diversity rule no child copies a configuration tried before or a sibling
    _, children = next_generation(population, [1, 6, 3, 5, 2, 4], GENES, 6, 3, 0.0, np.random.default_rng(0), seen=[B])
    identities = [json.dumps(c, sort_keys=True) for c in children]
    assert len(set(identities)) == 3 and not set(identities) & {json.dumps(c, sort_keys=True) for c in population + [B]}


def test_hyperband_brackets_share_out_the_configurations():
    # weights 9/3, 3/2, 1/1 (sum 5.5) of 13: 7.09, 3.55, 2.36 -> 7, 4, 2 (largest remainder)
    assert hyperband_brackets(13, 1, 9, 3) == [(7, [1, 3, 9]), (4, [3, 9]), (2, [9])]
    assert sum(n for n, _ in hyperband_brackets(8, 1, 9, 3)) == 8
    assert hyperband_brackets(3, 2, 2, 3) == [(3, [2])]


# ------------------------------------------------------------------ searches with a cheap objective


def fake_trial(store, config_data, trial):
    """A stand-in for run_trial: objective peaks at learning_rate 0.01 and width 32; fails for width 13."""
    params = trial["params"]
    record = dict(trial, key=trial_key(params, trial["seed"], trial["epochs"]), seconds=0.0)
    if params.get("width") == 13:
        return dict(record, status="failed", error="FloatingPointError: training diverged")
    objective = -abs(math.log10(params["learning_rate"]) + 2) - abs(params.get("width", 32) - 32) / 64 + 0.01 * trial["epochs"]
    return dict(record, status="ok", objective=objective, score=objective, metrics={})


@pytest.mark.parametrize("strategy", ["random", "hyperband", "genetic"])
def test_search_finds_the_clearly_best_value(strategy, tmp_path):
    space = {"learning_rate": {"type": "choice", "values": [1e-4, 1e-2, 10.0]}, "width": {"type": "choice", "values": [8, 32, 128]}}
    config = search_config(space, population=6, parents=3, mutation_probability=0.3, min_epochs=1, max_epochs=9)
    result = run_search(config, "unused", tmp_path, strategy=strategy, trials=18, trial_fn=fake_trial, plots=False)
    assert result.best["params"] == {"learning_rate": 0.01, "width": 32}


def test_failing_trials_are_recorded_and_the_search_goes_on(tmp_path):
    space = {"learning_rate": {"type": "choice", "values": [1e-3, 1e-2]}, "width": {"type": "choice", "values": [13, 32]}}
    result = run_search(search_config(space), "unused", tmp_path, trials=10, trial_fn=fake_trial)
    failed = [r for r in result.records if r["status"] == "failed"]
    assert failed and len(result.records) == 10 and "diverged" in failed[0]["error"]
    lines = [json.loads(line) for line in (tmp_path / "trials.jsonl").read_text().splitlines()]
    assert len(lines) == 10 and sum(r["status"] == "failed" for r in lines) == len(failed)
    assert all(r["status"] == "ok" for r in leaderboard(result.records)) and result.best["params"]["width"] == 32
    page = (tmp_path / "parallel.html").read_text()
    assert "<svg" in page and "failed: FloatingPointError" in page and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert (tmp_path / "plots" / "heatmap_learning_rate_vs_width.png").stat().st_size > 1000


def test_resume_refuses_a_folder_of_another_search(tmp_path):
    space = {"learning_rate": {"type": "choice", "values": [1e-3, 1e-2]}, "width": {"type": "choice", "values": [32]}}
    first = run_search(search_config(space), "unused", tmp_path, trials=3, trial_fn=fake_trial, plots=False)
    again = run_search(search_config(space), "unused", tmp_path, strategy="random", trials=4, trial_fn=fake_trial, plots=False)
    assert (first.executed, again.executed) == (3, 1)
    with pytest.raises(ValueError, match="another store or config"):
        run_search(search_config(space, objective="loss"), "unused", tmp_path, trials=3, trial_fn=fake_trial, plots=False)


def test_hyperband_runs_rungs_of_all_brackets_together_and_promotes_the_best(tmp_path):
    space = {"learning_rate": {"type": "float", "low": 1e-4, "high": 1.0, "log": True}, "width": {"type": "choice", "values": [8, 32]}}
    config = search_config(space, min_epochs=1, max_epochs=9, eta=3)
    result = run_search(config, "unused", tmp_path, strategy="hyperband", trials=13, trial_fn=fake_trial, plots=False)
    rungs = [(r["tags"]["bracket"], r["tags"]["rung"], r["epochs"]) for r in result.records]
    assert rungs[:13] == [(0, 0, 1)] * 7 + [(1, 0, 3)] * 4 + [(2, 0, 9)] * 2  # first batch: every bracket's first rung
    assert rungs[13:] == [(0, 1, 3)] * 2 + [(1, 1, 9)] + [(0, 2, 9)]
    first = {r["index"]: r["score"] for r in result.records[:7]}
    promoted = [r["index"] for r in result.records[13:15]]
    assert sorted(promoted) == sorted(sorted(first, key=first.get, reverse=True)[:2])


# ------------------------------------------------------------------ real training


def test_real_trial_failure_is_recorded(store):
    config = search_config(objective="asimov", objective_point="slepton_999_1")
    trial = {"index": 0, "params": {"width": 8, "learning_rate": 0.01, "activation": "relu"}, "seed": 1, "epochs": 1}
    record = run_trial(str(store), config.model_dump(mode="json"), trial)
    assert record["status"] == "failed" and "slepton_999_1" in record["error"]


@pytest.mark.slow
def test_dask_search_equals_iterative_search_and_resumes(store, tmp_path):
    from nn.search import search_client

    config = search_config(objective="asimov")
    inline = run_search(config, store, tmp_path / "inline", trials=8, plots=False)
    space = {"learning_rate": {"type": "float", "low": 1e-6, "high": 3e-2, "log": True}, "width": {"type": "choice", "values": [8, 16]}}
    bayes = search_config(space, objective="loss", pruner="median", startup_trials=2, ask_batch=3, epochs=2)
    bayes_inline = run_search(bayes, store, tmp_path / "bayes_inline", strategy="bayesian", trials=9, plots=False)
    with search_client(workers=2) as client:  # the CLI's LocalCluster: single-threaded, pinned workers
        assert len(client.scheduler_info()["workers"]) == 2
        distributed = run_search(config, store, tmp_path / "dask", trials=8, client=client, plots=False)
        bayes_dask = run_search(bayes, store, tmp_path / "bayes_dask", strategy="bayesian", trials=9, client=client, plots=False)
    # the Bayesian search too: same proposals, same pruning decisions, same numbers on the cluster
    fields = ("index", "params", "seed", "status", "intermediate", "pruner_attrs")
    assert [[r.get(f) for f in fields] for r in bayes_inline.records] == [[r.get(f) for f in fields] for r in bayes_dask.records]
    assert [r.get("objective") for r in bayes_inline.records] == [r.get("objective") for r in bayes_dask.records]
    assert inline.executed == distributed.executed == 8
    assert all(r["status"] == "ok" for r in inline.records)
    for a, b in zip(inline.records, distributed.records):
        assert (a["key"], a["seed"], a["params"]) == (b["key"], b["seed"], b["params"])
        assert a["objective"] == b["objective"] and a["metrics"] == b["metrics"]
    assert len({r["seed"] for r in inline.records}) == 8
    best = json.loads((tmp_path / "dask" / "best_model" / "model.json").read_text())
    assert best["search"]["key"] == distributed.best["key"]

    # resume: the same search again trains nothing; two more trials train only those two
    again = run_search(config, store, tmp_path / "inline", trials=8, plots=False)
    assert again.executed == 0 and [r["objective"] for r in again.records] == [r["objective"] for r in inline.records]
    more = run_search(config, store, tmp_path / "inline", trials=10, plots=False)
    assert more.executed == 2 and len(ResultsTable(tmp_path / "inline" / "trials.jsonl").records) == 10


def test_cli_and_pipeline_use_the_best_model(store, tmp_path, capsys):
    import yaml

    from analysis.pipeline import Pipeline
    from nn.artifact import load_model

    config_file = tmp_path / "search.yaml"
    config_file.write_text(yaml.safe_dump(search_config().model_dump(mode="json")))
    out = tmp_path / "out"
    assert main(["--config", str(config_file), "--store", str(store), "--out", str(out), "--strategy", "genetic",
                 "--trials", "3", "--executor", "iterative", "--quiet"]) == 0
    assert "best trial" in capsys.readouterr().out
    best = json.loads((out / "best.json").read_text())
    assert load_model(out / "best_model").metadata["search"]["key"] == best["key"]
    assert (out / "best_config.yaml").is_file() and (out / "parallel.html").is_file()

    data = search_config().model_dump(mode="json")
    data["search"].update(use_best_model=True, directory=str(out))
    data["training"]["folds"] = 1  # the best model is one network
    pipeline = Pipeline(config_from_dict(data), tmp_path / "analysis", executor="iterative")
    assert load_model(pipeline.train()).metadata["search"]["key"] == best["key"]
    data["search"].update(directory=str(tmp_path / "nothing"))
    with pytest.raises(ValueError, match="no finished search"):
        Pipeline(config_from_dict(data), tmp_path / "analysis2", executor="iterative").train()
    assert main(["--store", str(tmp_path / "nothing"), "--out", str(out)]) == 2


# ------------------------------------------------------------------ grid, Bayesian (Optuna), pruning

TOY_SPACE = {"learning_rate": {"type": "choice", "values": [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]},
             "width": {"type": "int", "low": 4, "high": 128, "log": True}}


def test_strategy_names_are_the_configs():
    assert set(STRATEGIES) == set(config_module.SEARCH_STRATEGIES)


@pytest.mark.parametrize("setting, value, allowed", [("sampler", "gp", "'tpe', 'random' or 'cmaes'"),
                                                     ("pruner", "asha", "'none', 'median' or 'hyperband'")])
def test_unknown_sampler_or_pruner_is_a_config_error_naming_the_setting(setting, value, allowed):
    with pytest.raises(ConfigError) as error:
        search_config(**{setting: value})
    assert f"search.{setting}: Input should be {allowed} (got '{value}')" in str(error.value)


def test_grid_trains_every_combination_with_one_seed(tmp_path):
    space = {"learning_rate": {"type": "choice", "values": [1e-3, 1e-2]}, "width": {"type": "int", "low": 31, "high": 33}}
    config = search_config(space)
    assert grid_configurations(config.search.space) == [{"learning_rate": lr, "width": w} for lr in (1e-3, 1e-2) for w in (31, 32, 33)]
    result = run_search(config, "unused", tmp_path, strategy="grid", trial_fn=fake_trial, plots=False)
    assert [r["params"] for r in result.records] == grid_configurations(config.search.space)
    assert {r["seed"] for r in result.records} == {config.seed}  # the config's training seed, for every point
    assert result.best["params"] == {"learning_rate": 1e-2, "width": 32}
    with pytest.raises(ConfigError, match="space.dropout: a grid search needs a choice or an int range"):
        search_config({"dropout": {"type": "float", "low": 0.0, "high": 0.2}}, strategy="grid")


def test_seeded_tpe_search_finds_the_clearly_best_value(tmp_path):
    # 6 x 125 configurations; the objective peaks at learning_rate 0.01, width 32
    config = search_config(TOY_SPACE, startup_trials=6, ask_batch=4)
    tpe = run_search(config, "unused", tmp_path / "tpe", strategy="bayesian", trials=24, trial_fn=fake_trial, plots=False)
    assert tpe.best["params"] == {"learning_rate": 0.01, "width": 32}
    assert len(tpe.records) == 24 and (tmp_path / "tpe" / STUDY_FILE).is_file()
    random = run_search(search_config(TOY_SPACE, sampler="random"), "unused", tmp_path / "random", strategy="bayesian",
                        trials=24, trial_fn=fake_trial, plots=False)
    assert random.best["objective"] < tpe.best["objective"]  # same budget, same seed: random sampling does worse
    study = optuna.load_study(study_name=STUDY_NAME, storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "tpe" / STUDY_FILE))))
    assert study.best_trial.number == tpe.best["index"] and study.best_value == tpe.best["score"]


class Interrupt(Exception):
    """Stands for Ctrl-C in the middle of a batch."""


def interrupted_trial(store, config_data, trial):
    if trial["index"] == 9:
        raise Interrupt
    return fake_trial(store, config_data, trial)


def test_bayesian_search_resumes_to_the_same_trials(tmp_path):
    config = search_config(TOY_SPACE, startup_trials=4, ask_batch=4)
    whole = run_search(config, "unused", tmp_path / "whole", strategy="bayesian", trials=16, trial_fn=fake_trial, plots=False)
    with pytest.raises(Interrupt):  # trials 8 and 9 of the third batch: 8 finished, 9 not, none told
        run_search(config, "unused", tmp_path / "cut", strategy="bayesian", trials=16, trial_fn=interrupted_trial, plots=False)
    again = run_search(config, "unused", tmp_path / "cut", strategy="bayesian", trials=16, trial_fn=fake_trial, plots=False)
    assert again.executed == 16 - 9  # trial 8 came from trials.jsonl
    assert [r["params"] for r in again.records] == [r["params"] for r in whole.records]
    assert [r["seed"] for r in again.records] == [trial_seed(7, i) for i in range(16)]


def _payload(pruner: str, finished: list[list[float]], **settings) -> tuple[dict, dict]:
    """A study whose finished trials reported ``finished`` per epoch, and one new (running) trial."""
    study = optuna.create_study(study_name=STUDY_NAME, direction="maximize")
    for values in finished:
        study.add_trial(optuna.trial.create_trial(
            value=values[-1], params={"width": 8}, distributions={"width": optuna.distributions.IntDistribution(4, 64)},
            intermediate_values=dict(enumerate(values, 1))))
    number = study.ask({"width": optuna.distributions.IntDistribution(4, 64)}).number
    rules = {"pruner": pruner, "startup_trials": 2, "min_epochs": 1, "max_epochs": 9, "eta": 3, **settings}
    return {"study_name": STUDY_NAME, "pruner": rules, "trials": study.get_trials(), "number": number}, rules


def test_median_pruner_stops_a_trial_below_the_median_of_finished_ones():
    payload, _ = _payload("median", [[0.80, 0.85, 0.88], [0.70, 0.75, 0.80], [0.90, 0.92, 0.93]])
    config = search_config(objective="auc")
    good = PruningReporter(payload, config)
    good(None, None, None, {"epoch": 1, "val": {"auc": 0.81, "loss": 0.5}})  # above the median 0.80: goes on
    bad = PruningReporter(payload, config)
    with pytest.raises(Pruned, match="pruned after epoch 1"):
        bad(None, None, None, {"epoch": 1, "val": {"auc": 0.79, "loss": 0.5}})
    assert bad.outcome() == {"intermediate": {"1": 0.79}, "pruner_attrs": {}}
    loss = PruningReporter(payload, search_config(objective="loss"))  # loss: the score is minus the loss
    with pytest.raises(Pruned):
        loss(None, None, None, {"epoch": 1, "val": {"auc": 0.99, "loss": 0.5}})
    off = PruningReporter(_payload("none", [[0.9]] * 3)[0], config)
    off(None, None, None, {"epoch": 1, "val": {"auc": 0.1, "loss": 9.0}})  # no pruner: never stops


def test_pruned_trials_of_a_real_search_follow_the_median_rule_and_are_told(store, tmp_path):
    space = {"learning_rate": {"type": "choice", "values": [1e-6, 3e-2]}, "width": {"type": "choice", "values": [8]}}
    config = search_config(space, pruner="median", startup_trials=2, ask_batch=2, epochs=3, sampler="random", objective="loss")
    config = config.model_copy(update={"training": config.training.model_copy(update={"max_epochs": 3, "patience": 3})})
    result = run_search(config, store, tmp_path, strategy="bayesian", trials=8, plots=False)
    records = sorted(result.records, key=lambda r: r["index"])
    assert [r["index"] for r in records] == list(range(8))
    # the median rule, recomputed from the records: at epoch s a trial stops when its best score so far
    # is below the median epoch-s score of the trials finished before its batch (2 of them at least)
    for r in records:
        finished = [f for f in records if f["index"] < r["index"] // 2 * 2 and f["status"] == "ok"]
        scores = [r["intermediate"][str(s)] for s in range(1, len(r["intermediate"]) + 1)]
        expected = None
        if len(finished) >= 2:
            for s in range(1, 4):
                if s <= len(scores) and max(scores[:s]) < np.median([f["intermediate"][str(s)] for f in finished]):
                    expected = s
                    break
        assert (r["status"], r.get("pruned_at")) == (("pruned", expected) if expected else ("ok", None)), r["index"]
    pruned = [r for r in records if r["status"] == "pruned"]
    assert len(pruned) == 2 and result.best["status"] == "ok"  # trials 6 and 7 with these seeds
    study = optuna.load_study(study_name=STUDY_NAME, storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / STUDY_FILE))))
    assert {t.number: t.state.name for t in study.trials} == {r["index"]: {"ok": "COMPLETE", "pruned": "PRUNED"}[r["status"]] for r in records}
    assert {t.number: t.intermediate_values for t in study.trials} == {r["index"]: {int(k): v for k, v in r["intermediate"].items()} for r in records}


def test_regularisation_study_sweeps_the_l2_constant(store, tmp_path):
    config = search_config()
    training = config.training.model_copy(update={"max_epochs": 5, "patience": 5, "learning_rate": 1e-2})
    config = config.model_copy(update={"training": training})
    constants = [0.0, 1e-2, 1.0]
    summary = run_regularisation_study(config, store, tmp_path, "l2", constants, bins=20)
    assert summary["constants"] == constants
    # the constant 0 is exactly the config's own training (same network, same seed)
    plain = train_classifier(read_feature_store(store), config, verbose=False)
    assert summary["val_auc"][0] == plain.metrics["val"]["auc"] and summary["test_auc"][0] == plain.metrics["test"]["auc"]
    # a larger constant gives smaller weights; L2 = 1 squeezes the network to nearly nothing:
    # the discriminant of signal and background collapse onto one narrow peak (measured: spread
    # 0.175 -> 0.016, validation AUC 0.893 -> 0.455)
    assert all(a > b for a, b in zip(summary["weight_l2"], summary["weight_l2"][1:])), summary["weight_l2"]
    assert summary["val_auc"][0] > 0.85 and summary["val_auc"][-1] < 0.6
    for counts in summary["signal"] + summary["background"]:
        assert sum(counts) == pytest.approx(1.0)
    centres = 0.5 * (np.array(summary["edges"][1:]) + np.array(summary["edges"][:-1]))
    spread = [float(np.sqrt(np.dot(h, (centres - np.dot(h, centres)) ** 2))) for h in summary["signal"]]
    assert spread[-1] < 0.2 * spread[0], spread
    saved = json.loads((tmp_path / "regularisation.json").read_text())
    assert saved["val_auc"] == summary["val_auc"] and saved["penalty"] == "l2"
    assert all((tmp_path / "plots" / name).stat().st_size > 5000 for name in ("discriminant.png", "auc_vs_constant.png"))
    with pytest.raises(SearchError, match="--penalty: unknown penalty 'l3'"):
        run_regularisation_study(config, store, tmp_path / "x", "l3", constants)
    with pytest.raises(SearchError, match="--values: the constants must be distinct, finite and >= 0"):
        run_regularisation_study(config, store, tmp_path / "x", "l1+l2", [0.0, -1.0])
