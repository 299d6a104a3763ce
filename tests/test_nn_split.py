"""nn.split: the hash split is deterministic, order-independent and has the right fractions."""

from __future__ import annotations

import numpy as np
import pytest

from nn.split import TEST, TRAIN, VALIDATION, assign_split, event_uniform, splitmix64

FRACTIONS = (0.6, 0.2, 0.2)


def _events(n: int = 100_000):
    rng = np.random.default_rng(1)
    datasets = np.array(["WW", "ttbar", "slepton_200_40", "ZZ"])[rng.integers(0, 4, n)]
    events = rng.permutation(10 * n)[:n].astype(np.uint64)
    return datasets, events


def test_splitmix64_matches_the_reference_sequence():
    # outputs of Vigna's splitmix64 generator seeded with 0: mix(k * golden gamma), k = 1, 2, 3
    states = np.uint64(0x9E3779B97F4A7C15) * np.arange(3, dtype=np.uint64)
    assert [int(v) for v in splitmix64(states)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


def test_fractions_within_a_few_sigma_on_1e5_events():
    datasets, events = _events()
    split = assign_split(datasets, events, FRACTIONS)
    n = split.size
    for code, fraction in zip((TRAIN, VALIDATION, TEST), FRACTIONS):
        observed = np.mean(split == code)
        sigma = np.sqrt(fraction * (1 - fraction) / n)
        assert abs(observed - fraction) < 4 * sigma, (code, observed)


def test_identical_on_reruns_and_independent_of_row_order():
    datasets, events = _events()
    first = assign_split(datasets, events, FRACTIONS)
    again = assign_split(datasets.copy(), events.copy(), FRACTIONS)
    np.testing.assert_array_equal(first, again)
    order = np.random.default_rng(5).permutation(events.size)
    np.testing.assert_array_equal(assign_split(datasets[order], events[order], FRACTIONS), first[order])
    # a subset (e.g. one chunk at scoring time) gets the same codes
    np.testing.assert_array_equal(assign_split(datasets[:1000], events[:1000], FRACTIONS), first[:1000])


def test_codes_and_names_give_the_same_split():
    datasets, events = _events(5_000)
    names, codes = np.unique(datasets, return_inverse=True)
    by_codes = assign_split(codes, events, FRACTIONS, dataset_names=list(names))
    np.testing.assert_array_equal(by_codes, assign_split(datasets, events, FRACTIONS))
    single = assign_split("WW", events[datasets == "WW"], FRACTIONS)
    np.testing.assert_array_equal(single, by_codes[datasets == "WW"])


def test_dataset_name_and_seed_change_the_assignment():
    events = np.arange(20_000, dtype=np.uint64)
    ww = assign_split("WW", events, FRACTIONS)
    assert np.mean(ww != assign_split("ZZ", events, FRACTIONS)) > 0.3
    assert np.mean(ww != assign_split("WW", events, FRACTIONS, seed=1)) > 0.3


def test_uniform_draw_is_uniform_and_purpose_salted():
    u = event_uniform("WW", np.arange(100_000, dtype=np.uint64))
    assert 0 <= u.min() and u.max() < 1
    counts = np.histogram(u, bins=10, range=(0, 1))[0]
    assert np.all(np.abs(counts - 10_000) < 5 * np.sqrt(9_000))
    other = event_uniform("WW", np.arange(100_000, dtype=np.uint64), purpose="background-parameters")
    assert abs(np.corrcoef(u, other)[0, 1]) < 0.02


def test_bad_fractions_and_events_are_refused():
    with pytest.raises(ValueError, match="summing to 1"):
        assign_split("WW", np.arange(3, dtype=np.uint64), (0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match=">= 0"):
        assign_split("WW", np.array([-1, 2]), FRACTIONS)
