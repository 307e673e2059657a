"""Slice embeddings of one image, computed at most once: from this run's memory, the disk cache, or the encoder.

The image is windowed to 0..255 once (the paper's per-modality window), so the digest that keys the disk cache
covers exactly what the encoder sees. Embeddings pass through float16 whether they were computed or read
(the cache's storage type), so a first run and a cached re-run decode identical numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from radassist.interactive.crops import SliceCrop
from radassist.interactive.embedding_cache import STORED_DTYPE, EmbeddingCache, image_digest
from radassist.interactive.engine import EMBEDDING_SHAPE, LiteMedSamEngine
from radassist.interactive.preprocess import IntensityWindow, prepare_slices
from radassist.volume import Geometry


class SliceEmbeddings:
    """Embeddings of the canonical slices (or of one part of them) of one windowed image (uint8, (slices, rows,
    columns))."""

    def __init__(self, windowed: np.ndarray, geometry: Geometry, window: IntensityWindow, engine: LiteMedSamEngine,
                 cache: EmbeddingCache | None = None, batch_size: int = 1) -> None:
        self.windowed = windowed
        self.engine = engine
        self.cache = cache
        self.window = window
        self.batch_size = max(int(batch_size), 1)
        self.digest = image_digest(windowed, (*geometry.spacing, *geometry.origin, *geometry.direction))
        self._memory: dict[tuple[int, str], np.ndarray] = {}
        self.computed = 0
        self.read = 0

    def _key(self, index: int, crop: SliceCrop) -> str:
        where = index if crop.full else f"{index}@{crop.key}"
        return EmbeddingCache.key(self.digest, where, self.window.key, self.engine.weights_sha256,
                                  self.engine.variant)

    def get(self, index: int, crop: SliceCrop, ahead: Sequence[int] = ()) -> np.ndarray:
        """The embedding of ``crop`` of slice ``index`` (float32 values of the stored float16); slices in
        ``ahead`` not known yet are encoded in the same batch (up to ``batch_size``)."""
        if (index, crop.key) not in self._memory:
            wanted = [index] + [i for i in ahead if (i, crop.key) not in self._memory and i != index]
            self._fill(wanted[:self.batch_size], crop)
        return self._memory[(index, crop.key)]

    def _fill(self, indices: list[int], crop: SliceCrop) -> None:
        missing = []
        for index in indices:
            stored = self.cache.get(self._key(index, crop)) if self.cache is not None else None
            if stored is not None and stored.shape == EMBEDDING_SHAPE:
                self._memory[(index, crop.key)] = stored.astype(np.float32)
                self.read += 1
            else:
                missing.append(index)
        if not missing:
            return
        pixels = self.windowed[missing, crop.y0:crop.y0 + crop.height, crop.x0:crop.x0 + crop.width]
        embeddings = self.engine.encode(prepare_slices(pixels))
        for index, embedding in zip(missing, embeddings):
            stored = embedding.astype(STORED_DTYPE)
            if self.cache is not None:
                self.cache.put(self._key(index, crop), stored)
            self._memory[(index, crop.key)] = stored.astype(np.float32)
            self.computed += 1
