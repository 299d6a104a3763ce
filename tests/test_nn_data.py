"""nn.data: the feature-store reader (float32 once, clear errors naming file and column)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nn.data import FeatureStoreError, read_feature_store
from tests.synthetic import write_synthetic_store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return write_synthetic_store(
        tmp_path_factory.mktemp("store") / "store", n_signal=300, n_background=500, grid=((100, 10), (200, 40)), seed=3
    )


def _copy(store: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(store, target)
    return target


def test_reads_every_part_into_float32_arrays(store):
    table = read_feature_store(store)
    schema = json.loads((store / "schema.json").read_text())
    parts = sorted((store / "parts").glob("*.parquet"))
    expected = pa.concat_tables([pq.read_table(p) for p in parts])
    assert len(table) == expected.num_rows == 3 * 500 + 2 * 300
    assert table.features.dtype == np.float32 and table.features.flags.c_contiguous
    assert table.feature_names == tuple(schema["feature_names"])
    for j, name in enumerate(table.feature_names):
        np.testing.assert_array_equal(table.features[:, j], expected.column(name).to_numpy())
    np.testing.assert_array_equal(table.weight, expected.column("weight").to_numpy())
    np.testing.assert_array_equal(table.event, expected.column("event").to_numpy())
    datasets = np.array(table.dataset_names)[table.dataset]
    np.testing.assert_array_equal(datasets, expected.column("dataset").to_numpy(zero_copy_only=False))
    processes = np.array(table.process_names)[table.process]
    np.testing.assert_array_equal(processes, expected.column("process").to_numpy(zero_copy_only=False))
    assert table.signal_points() == [(100.0, 10.0), (200.0, 40.0)]
    assert np.all(np.isnan(table.m_slepton[table.label == 0]))


def test_feature_subset_is_read_in_the_requested_order(store):
    table = read_feature_store(store, features=["mll", "met"])
    full = read_feature_store(store)
    assert table.feature_names == ("mll", "met")
    np.testing.assert_array_equal(table.features[:, 1], full.column("met"))


def test_missing_column_names_the_file_and_column(store, tmp_path):
    copy = _copy(store, tmp_path)
    part = sorted((copy / "parts").glob("*.parquet"))[1]
    pq.write_table(pq.read_table(part).drop_columns(["mll"]), part)
    with pytest.raises(FeatureStoreError, match=rf"{part.name} is missing column\(s\) \['mll'\]"):
        read_feature_store(copy)


def test_nan_feature_names_column_and_row_count(store, tmp_path):
    copy = _copy(store, tmp_path)
    part = sorted((copy / "parts").glob("*.parquet"))[0]
    data = pq.read_table(part)
    met = data.column("met").to_numpy().copy()
    met[[3, 7, 11]] = [np.nan, np.inf, np.nan]
    pq.write_table(data.set_column(data.schema.get_field_index("met"), "met", pa.array(met)), part)
    with pytest.raises(FeatureStoreError, match=rf"{part.name}: column 'met' has 3 NaN or infinite value"):
        read_feature_store(copy)


def test_unreadable_part_is_named(store, tmp_path):
    copy = _copy(store, tmp_path)
    bad = copy / "parts" / "zz_broken.parquet"
    bad.write_bytes(b"PAR1 this is not a parquet file")
    with pytest.raises(FeatureStoreError, match="cannot read feature-store part .*zz_broken.parquet"):
        read_feature_store(copy)


def test_malformed_reference_parquet_is_refused(store, tmp_path, shared_data):
    copy = _copy(store, tmp_path)
    shutil.copy(shared_data / "cms" / "nano_dy_malformed.parquet", copy / "parts" / "malformed.parquet")
    with pytest.raises(FeatureStoreError, match="malformed.parquet"):
        read_feature_store(copy)


def test_missing_store_pieces_are_reported(tmp_path, store):
    with pytest.raises(FeatureStoreError, match="cannot read feature-store schema"):
        read_feature_store(tmp_path / "nowhere")
    copy = _copy(store, tmp_path)
    shutil.rmtree(copy / "parts")
    with pytest.raises(FeatureStoreError, match="has no parts/ directory"):
        read_feature_store(copy)


def test_dataset_not_in_schema_is_refused(store, tmp_path):
    copy = _copy(store, tmp_path)
    schema = json.loads((copy / "schema.json").read_text())
    del schema["datasets"]["WW"]
    (copy / "schema.json").write_text(json.dumps(schema))
    with pytest.raises(FeatureStoreError, match=r"dataset\(s\) \['WW'\] are not listed in schema.json"):
        read_feature_store(copy)


def test_peak_memory_is_below_twice_the_feature_matrix(tmp_path):
    """numpy (tracemalloc) + Arrow pool peaks reading 26 features x 400k rows (16 parts), in a fresh process.

    The Arrow part is bounded by one part (one processing chunk), the numpy part is the output
    arrays (features + 33 bytes of metadata per row), so the ratio falls with the store size.
    """
    features = tuple(f"f{j}" for j in range(26))
    store = write_synthetic_store(
        tmp_path / "big", n_signal=100_000, n_background=100_000, grid=((100, 10), (200, 40)),
        backgrounds=("WW", "ttbar"), feature_names=features, parts_per_dataset=4,
    )
    script = textwrap.dedent(
        f"""
        import json, tracemalloc
        import pyarrow as pa
        from nn.data import read_feature_store
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        table = read_feature_store({str(store)!r})
        numpy_peak = tracemalloc.get_traced_memory()[1] - base
        print(json.dumps({{"numpy": numpy_peak, "arrow": pa.default_memory_pool().max_memory(),
                           "features": table.features.nbytes}}))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True)
    peaks = json.loads(result.stdout)
    assert peaks["numpy"] + peaks["arrow"] <= 2 * peaks["features"], peaks
