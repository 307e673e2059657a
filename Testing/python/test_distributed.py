"""Distributed training under torchrun with two CPU processes (Gloo): DDP keeps the ranks' weights identical, the
loss matches a single process with the same global batch, gradient accumulation all-reduces once per optimiser
step, and the liver training loop runs data parallel. The torchrun environment is read and checked.

This file is also the worker torchrun starts: ``python -m torch.distributed.run --nproc-per-node 2
test_distributed.py SCENARIO OUT`` runs one scenario per rank and writes ``OUT/<scenario>-rank<R>.npz``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from radassist.runtime.distributed import (DistributedError, accumulation_step, all_reduce_sum, distributed_sampler,
                                           gather_objects, global_mean, is_distributed, is_main_process,
                                           main_rank_folder, rank_order, read_env, shard, unwrap, wrap_ddp)

HERE = Path(__file__).resolve()
SAMPLES, FEATURES, PER_RANK_BATCH, STEPS, LEARNING_RATE = 32, 6, 4, 4, 0.2
WORLD = 2


# -- the scenarios (run on every rank by torchrun, or in one process for the reference) -------------------------------

def toy_problem():
    import torch

    generator = torch.Generator().manual_seed(7)
    inputs = torch.randn(SAMPLES, FEATURES, generator=generator)
    targets = torch.sin(inputs.sum(dim=1, keepdim=True))
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(FEATURES, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    return model, inputs, targets


def train_toy(batch_size: int) -> dict[str, np.ndarray]:
    """SGD on the toy problem; under DDP each rank takes its rank_order share of the same epoch order."""
    import torch

    model, inputs, targets = toy_problem()
    trained = wrap_ddp(model, "cpu")
    optimiser = torch.optim.SGD(trained.parameters(), lr=LEARNING_RATE)
    order = rank_order(list(range(SAMPLES)))
    losses = []
    for step in range(STEPS):
        chunk = order[step * batch_size:(step + 1) * batch_size]
        loss = torch.nn.functional.mse_loss(trained(inputs[chunk]), targets[chunk])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(global_mean(float(loss.detach()) * len(chunk), len(chunk)))
    weights = np.concatenate([p.detach().numpy().ravel() for p in unwrap(trained).parameters()])
    return {"losses": np.array(losses), "weights": weights}


def accumulate_toy(micro_steps: int = 3, optimiser_steps: int = 2) -> dict[str, np.ndarray]:
    """Count the gradient all-reduces DDP makes: a communication hook sees every bucket it reduces."""
    import torch
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    model, inputs, targets = toy_problem()
    trained = wrap_ddp(model, "cpu")
    calls = {"count": 0}

    def counting_hook(state, bucket):
        calls["count"] += 1
        return allreduce_hook(None, bucket)

    trained.register_comm_hook(None, counting_hook)
    optimiser = torch.optim.SGD(trained.parameters(), lr=LEARNING_RATE)
    order = rank_order(list(range(SAMPLES)))
    counts, step = [], 0
    for _ in range(optimiser_steps):
        for micro in range(micro_steps):
            chunk = order[step * 2:(step + 1) * 2]
            step += 1
            with accumulation_step(trained, final=micro == micro_steps - 1):
                loss = torch.nn.functional.mse_loss(trained(inputs[chunk]), targets[chunk]) / micro_steps
                loss.backward()
            counts.append(calls["count"])
        optimiser.step()
        optimiser.zero_grad()
    weights = np.concatenate([p.detach().numpy().ravel() for p in unwrap(trained).parameters()])
    return {"counts": np.array(counts), "weights": weights}


def train_liver_tiny() -> dict[str, np.ndarray]:
    """The real liver training loop on a tiny phantom, as `radassist train liver` runs it."""
    import torch

    from radassist.liver.datasets import LitsCase, LitsVolume, training_slices
    from radassist.liver.preprocess import ABDOMINAL_WINDOW, LiverPreprocessing
    from radassist.liver.train import LiverTrainConfig, train_liver
    from radassist.synthetic.abdomen import AbdomenPhantomConfig, make_abdomen_ct

    torch.set_num_threads(1)
    phantom = make_abdomen_ct(0, AbdomenPhantomConfig(shape=(16, 32, 40), spacing=(6.6, 6.6, 12.0)))
    cases = [LitsVolume(LitsCase(n, None, None), phantom.volume, phantom.labels.flattened()) for n in (0, 1)]
    slices = training_slices(cases, LiverPreprocessing(window=ABDOMINAL_WINDOW), (32, 32))
    config = LiverTrainConfig(architecture="unet", model={"channels": (4, 8, 16)}, window=ABDOMINAL_WINDOW,
                              image_size=(32, 32), epochs=2, learning_rate=3e-3, batch_size=4,
                              validation_fraction=0.5, augment=None)
    trained = train_liver(slices, config)
    weights = np.concatenate([p.detach().numpy().ravel() for p in trained.model.parameters()])
    history = trained.history[-1]
    return {"weights": weights, "loss": np.array([r.train_loss for r in trained.history]),
            "dice": np.array([history.validation_dice_liver]), "slices": np.array([len(slices)])}


def collectives() -> dict[str, np.ndarray]:
    from radassist.runtime.distributed import broadcast_object, get_rank

    rank = get_rank()
    shared = broadcast_object({"from": rank} if rank == 0 else None)
    with main_rank_folder(os.environ["BATCH_TEST_OUT"]) as folder:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"written-by-{rank}.txt").write_text("x")
    return {"sum": np.array(all_reduce_sum([rank, 1.0])), "gathered": np.array(gather_objects(rank * 10)),
            "broadcast": np.array([shared["from"]]), "main": np.array([is_main_process()]),
            "shard": np.array(shard(list(range(7)))), "sampler": np.array(list(distributed_sampler(range(5))))}


SCENARIOS = {"toy": lambda: train_toy(PER_RANK_BATCH), "accumulate": accumulate_toy, "liver": train_liver_tiny,
             "collectives": collectives}


def worker(names: list[str], out: Path) -> None:
    from radassist.runtime.distributed import distributed_session, get_rank

    with distributed_session("cpu"):
        assert is_distributed()
        os.environ["BATCH_TEST_OUT"] = str(out / "main-only")
        for name in names:
            np.savez(out / f"{name}-rank{get_rank()}.npz", **SCENARIOS[name]())


# -- the tests --------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    """Every scenario once, on two CPU processes started by torchrun (one start-up for all of them)."""
    out = tmp_path_factory.mktemp("ddp")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(WORLD),
               str(HERE), ",".join(SCENARIOS), str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return out


def load(out: Path, name: str, rank: int) -> dict[str, np.ndarray]:
    with np.load(out / f"{name}-rank{rank}.npz") as data:
        return dict(data)


def test_ranks_hold_identical_weights_and_match_a_single_process_with_the_global_batch(two_ranks):
    ranks = [load(two_ranks, "toy", r) for r in range(WORLD)]
    np.testing.assert_array_equal(ranks[0]["weights"], ranks[1]["weights"])
    np.testing.assert_array_equal(ranks[0]["losses"], ranks[1]["losses"])
    single = train_toy(PER_RANK_BATCH * WORLD)  # one process, the same global batch: the same optimisation
    np.testing.assert_allclose(ranks[0]["losses"], single["losses"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ranks[0]["weights"], single["weights"], rtol=1e-5, atol=1e-6)
    before = toy_problem()[0]
    initial = np.concatenate([p.detach().numpy().ravel() for p in before.parameters()])
    assert not np.allclose(single["weights"], initial)  # training moved the weights: the comparison means something
    assert single["losses"][-1] < single["losses"][0]


def test_accumulation_all_reduces_only_on_the_final_micro_step(two_ranks):
    for rank in range(WORLD):
        counts = load(two_ranks, "accumulate", rank)["counts"]
        buckets = counts[2]
        assert buckets >= 1
        assert list(counts) == [0, 0, buckets, buckets, buckets, 2 * buckets]
    np.testing.assert_array_equal(load(two_ranks, "accumulate", 0)["weights"],
                                  load(two_ranks, "accumulate", 1)["weights"])


def test_liver_training_loop_runs_data_parallel(two_ranks):
    ranks = [load(two_ranks, "liver", r) for r in range(WORLD)]
    np.testing.assert_array_equal(ranks[0]["weights"], ranks[1]["weights"])
    np.testing.assert_array_equal(ranks[0]["loss"], ranks[1]["loss"])  # the loss is averaged over the ranks
    np.testing.assert_array_equal(ranks[0]["dice"], ranks[1]["dice"])  # validation summed over the ranks' shares
    assert np.isfinite(ranks[0]["loss"]).all() and 0.0 <= ranks[0]["dice"][0] <= 1.0


def test_collectives_sharding_and_rank_zero_folder(two_ranks):
    ranks = [load(two_ranks, "collectives", r) for r in range(WORLD)]
    for rank, values in enumerate(ranks):
        assert list(values["sum"]) == [1.0, 2.0]  # ranks 0 + 1, and 1 + 1
        assert list(values["gathered"]) == [0, 10] and list(values["broadcast"]) == [0]
        assert bool(values["main"][0]) == (rank == 0)
    assert sorted(np.concatenate([r["shard"] for r in ranks]).tolist()) == list(range(7))  # each item once
    samples = [r["sampler"].tolist() for r in ranks]  # DistributedSampler: 5 items padded to 3 per rank
    assert [len(s) for s in samples] == [3, 3] and set(samples[0] + samples[1]) == set(range(5))
    assert [p.name for p in (two_ranks / "main-only").iterdir()] == ["written-by-0.txt"]


def test_radassist_train_under_torchrun_writes_one_checkpoint_from_rank_zero(tmp_path):
    from radassist.synthetic.abdomen import AbdomenPhantomConfig
    from radassist.synthetic.datasets import write_dataset

    data = write_dataset("liver", tmp_path / "data", 2, 0,
                         config=AbdomenPhantomConfig(shape=(16, 32, 40), spacing=(6.6, 6.6, 12.0)))
    out = tmp_path / "model"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                           str(WORLD), "-m", "radassist.cli", "train", "liver", "--data", str(data), "--out", str(out),
                           "--arch", "unet", "--channels", "4,8,16", "--image-size", "32", "--window", "abdominal",
                           "--epochs", "2", "--no-augment", "--validation-fraction", "0.5", "--device", "cpu"],
                          env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert done.stdout.count("trained liver-unet on") == 1  # rank 0 alone prints
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "result.json", "train_log.csv",
                                                     "training_curves.png"]
    record = json.loads((out / "result.json").read_text())
    assert record["command"] == "train liver" and len(record["summary"]["validation_cases"]) == 1


# -- single process: the helpers change nothing -----------------------------------------------------------------------

def test_a_single_process_is_left_alone():
    import torch

    model = torch.nn.Linear(2, 1)
    assert wrap_ddp(model, "cpu") is model and unwrap(model) is model
    assert not is_distributed() and is_main_process()
    assert shard([1, 2, 3]) == [1, 2, 3] and rank_order([3, 1, 2]) == [3, 1, 2]
    assert all_reduce_sum(2.5) == 2.5 and global_mean(6.0, 3) == 2.0 and gather_objects("x") == ["x"]
    assert distributed_sampler(range(4)) is None


def test_rank_order_pads_like_distributed_sampler_and_keeps_global_batches():
    order = [9, 4, 7, 1, 3]
    shares = [rank_order(order, rank, 2) for rank in range(2)]
    assert shares == [[9, 7, 3], [4, 1, 9]]  # padded with the start of the order to 6, then strided
    # with per-rank batch 1, step k of both ranks together is the single-process batch k of size 2
    assert [sorted([shares[0][k], shares[1][k]]) for k in range(2)] == [sorted(order[0:2]), sorted(order[2:4])]
    assert shard(order, 1, 2) == [4, 1]


def test_torchrun_environment_is_read_and_checked():
    assert read_env({}).world_size == 1 and not read_env({}).distributed
    env = read_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                    "MASTER_ADDR": "node0", "MASTER_PORT": "29500"})
    assert (env.rank, env.world_size, env.local_rank, env.master_port) == (3, 4, 1, 29500)
    assert env.distributed and not env.is_main and "rank 3 of 4" in env.describe()
    with pytest.raises(DistributedError, match="RANK must be within"):
        read_env({"RANK": "4", "WORLD_SIZE": "4", "MASTER_ADDR": "a", "MASTER_PORT": "1"})
    with pytest.raises(DistributedError, match="MASTER_ADDR"):
        read_env({"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(DistributedError, match="not a whole number"):
        read_env({"WORLD_SIZE": "two"})


def test_main_rank_folder_is_the_folder_itself_in_a_single_process(tmp_path):
    with main_rank_folder(tmp_path / "out") as folder:
        assert folder == tmp_path / "out"


if __name__ == "__main__":
    worker(sys.argv[1].split(","), Path(sys.argv[2]))
    print(json.dumps({"rank": int(os.environ.get("RANK", 0)), "done": sys.argv[1]}))
