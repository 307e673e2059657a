"""The on-disk cache of slice embeddings: what a key covers, float16 storage, damaged entries, the size bound
(least recently used go first) and several processes writing at once."""

from __future__ import annotations

import multiprocessing
import os
import time

import numpy as np
import pytest

from radassist.interactive.embedding_cache import EmbeddingCache, image_digest

SHAPE = (256, 64, 64)


def embedding(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float32)


def test_a_stored_embedding_comes_back_as_float16(tmp_path):
    cache = EmbeddingCache(folder=tmp_path, limit_bytes=1 << 30)
    key = cache.key("image", 3, "fixed:-160:240", "a" * 64, "onnx-fp32")
    assert cache.get(key) is None and cache.misses == 1
    value = embedding(0)
    cache.put(key, value)
    back = cache.get(key)
    assert back.dtype == np.float16 and np.array_equal(back, value.astype(np.float16))
    assert cache.hits == 1
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".") and p.suffix == ".npy"]  # no temp files


def test_the_key_changes_with_image_slice_window_weights_and_engine():
    base = ("image", 3, "fixed:-160:240", "a" * 64, "onnx-fp32")
    keys = {EmbeddingCache.key(*base)}
    for position, other in enumerate(("other image", 4, "percentile:0.5:99.5", "b" * 64, "onnx-int8")):
        changed = list(base)
        changed[position] = other
        keys.add(EmbeddingCache.key(*changed))
    assert len(keys) == 6


def test_the_image_digest_covers_voxels_and_geometry():
    voxels = np.zeros((2, 4, 4), dtype=np.uint8)
    geometry = (1.0, 1.0, 2.0, 0.0, 0.0, 0.0)
    first = image_digest(voxels, geometry)
    assert image_digest(voxels.copy(), geometry) == first
    changed = voxels.copy()
    changed[1, 2, 3] = 1
    assert image_digest(changed, geometry) != first
    assert image_digest(voxels, (1.0, 1.0, 2.5, 0.0, 0.0, 0.0)) != first


def test_a_damaged_entry_is_a_miss_and_is_removed(tmp_path):
    cache = EmbeddingCache(folder=tmp_path, limit_bytes=1 << 30)
    key = cache.key("image", 0, "w", "s", "v")
    cache.put(key, embedding(0))
    path = next(tmp_path.rglob(f"{key}.npy"))
    path.write_bytes(path.read_bytes()[:1000])  # truncated, as by a full disk in an older version
    assert cache.get(key) is None
    assert not path.exists()


def test_a_disabled_cache_stores_nothing(tmp_path):
    cache = EmbeddingCache(folder=tmp_path, limit_bytes=0)
    cache.put("k" * 64, embedding(0))
    assert cache.get("k" * 64) is None and not any(tmp_path.iterdir())


def test_the_size_bound_removes_the_least_recently_used(tmp_path):
    entry = int(np.prod(SHAPE)) * 2 + 128  # float16 bytes plus the .npy header
    cache = EmbeddingCache(folder=tmp_path, limit_bytes=int(3.5 * entry))
    keys = [cache.key("image", i, "w", "s", "v") for i in range(5)]
    for age, key in enumerate(keys):
        cache.put(key, embedding(age))
        path = next(tmp_path.rglob(f"{key}.npy"))
        os.utime(path, (time.time() - 100 + age, time.time() - 100 + age))
    assert cache.get(keys[0]) is not None  # reading makes the oldest entry the most recently used
    removed = cache.prune()
    assert removed >= 2 and cache.size_bytes() <= 0.9 * cache.limit_bytes
    assert cache.get(keys[0]) is not None and cache.get(keys[4]) is not None
    assert cache.get(keys[1]) is None and cache.get(keys[2]) is None


def _writer(folder: str, worker: int, keys: list[str]) -> None:
    cache = EmbeddingCache(folder=__import__("pathlib").Path(folder), limit_bytes=1 << 30)
    for round_ in range(3):
        for index, key in enumerate(keys):
            cache.put(key, embedding(index))  # every worker writes the same value under the same key
            got = cache.get(key)
            assert got is None or np.array_equal(got, embedding(index).astype(np.float16))


def test_concurrent_writers_never_leave_a_torn_entry(tmp_path):
    keys = [EmbeddingCache.key("image", i, "w", "s", "v") for i in range(4)]
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(tmp_path), n, keys)) for n in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    cache = EmbeddingCache(folder=tmp_path, limit_bytes=1 << 30)
    for index, key in enumerate(keys):
        assert np.array_equal(cache.get(key), embedding(index).astype(np.float16))
    assert sorted(p.name for p in tmp_path.rglob("*.npy")) == sorted(f"{k}.npy" for k in keys)


@pytest.mark.parametrize("value, expected", [("", 2048), ("100", 100), ("0", 0), ("lots", 2048)])
def test_the_bound_comes_from_the_environment(monkeypatch, value, expected):
    from radassist.interactive.embedding_cache import CACHE_ENV, default_limit_bytes

    monkeypatch.setenv(CACHE_ENV, value)
    assert default_limit_bytes() == expected * 1024 * 1024
