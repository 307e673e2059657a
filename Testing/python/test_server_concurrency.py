"""Many clients at once: every job is answered, none is lost, and each result belongs to its own input."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from radassist.client import RadAssistClient
from radassist.io import read_volume, write_volume
from server_fixtures import TOKEN, running_server, small_volume

CLIENTS, JOBS_PER_CLIENT = 8, 3


def test_eight_clients_three_jobs_each_nothing_lost_or_mixed_up(tmp_path: Path):
    inputs = {}
    for client in range(CLIENTS):
        for job in range(JOBS_PER_CLIENT):
            seed = client * JOBS_PER_CLIENT + job
            path = tmp_path / "in" / f"case{seed}.nrrd"
            write_volume(small_volume(seed), path)
            inputs[seed] = path

    with running_server(tmp_path, queue_size=CLIENTS * JOBS_PER_CLIENT) as (url, app):
        def one_client(client: int) -> list[tuple[int, list[Path]]]:
            remote = RadAssistClient(url, token=TOKEN)
            done = []
            for job in range(JOBS_PER_CLIENT):
                seed = client * JOBS_PER_CLIENT + job
                out = tmp_path / "out" / str(seed)
                done.append((seed, remote.run("convert", [inputs[seed]], {"name": f"case{seed}"}, out)))
            return done

        with ThreadPoolExecutor(CLIENTS) as pool:
            results = [item for batch in pool.map(one_client, range(CLIENTS)) for item in batch]
        assert not any(app.state.storage.root.iterdir())  # every finished job was deleted by its client

    assert sorted(seed for seed, _ in results) == list(range(CLIENTS * JOBS_PER_CLIENT))
    for seed, written in results:
        assert sorted(p.name for p in written) == [f"case{seed}.nrrd", "result.json"]
        got = read_volume(tmp_path / "out" / str(seed) / f"case{seed}.nrrd")
        expected = small_volume(seed)
        np.testing.assert_array_equal(got.array, expected.array)
        np.testing.assert_allclose(got.spacing, expected.spacing)
        np.testing.assert_allclose(got.origin, expected.origin)
