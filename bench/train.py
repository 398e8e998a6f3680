"""Benchmark MicroCrackPointNet training and inference throughput at full input size.

How it is measured: synthetic normal input `(B, 2000, 81, 2)` and random target boxes (the
data pipeline is not timed); one warm-up step, then `--steps` timed AdamW steps (forward,
MSE loss, backward, update) in train mode and `--steps` timed forward passes in eval mode
under `torch.no_grad()`. FLOPs of one forward pass are counted with
`torch.utils.flop_counter.FlopCounterMode` (convolutions and matrix products; a multiply-add
counts 2); the training FLOP rate assumes backward = 2 x forward, i.e.
`3 x forward FLOP x train samples/s`. `--channels-last` runs the network on channels-last
tensors (what `python -m model train` does on a CPU). The SGEMM roof is measured in the same
run: the GFLOP/s of `torch.mm` on two 2048 x 2048 float32 matrices with the same threads, so
`roof_share` = achieved / roof compares like with like on any machine.

With `--data SHARD.nc ... --pristine P.nc` the input path is timed as well, on up to
`--read-samples` samples of the shards: reading, decompressing and conditioning one sample at a
time as `model.data.WavefieldDataset` does (pristine subtracted, one scale per sensor), first
from the NetCDF files and then from its in-memory cache (`cache=True`, what `python -m model
train` does from the second epoch on). `epoch_samples_per_s_uncached` is the training rate
with every sample read in the main process before its step (`1 / (1/read + 1/train)`, the
pipeline before the cache); `epoch_samples_per_s_cached` the rate with cached inputs.

    python bench/train.py [--batch-size 8] [--steps 3] [--threads N] [--channels-last]
                          [--device cpu] [--data SHARD.nc ... --pristine P.nc] [--json]

The last line of `--json` output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model.data import WavefieldDataset  # noqa: E402
from model.inference import resolve_device  # noqa: E402
from model.nets.microcrackpointnet import MicroCrackPointNet  # noqa: E402
from model.nets.summary import parameter_counts  # noqa: E402

INPUT_SHAPE = (2000, 81, 2)


def forward_flop_per_sample(model: torch.nn.Module, device: torch.device) -> float:
    """FLOPs of one eval-mode forward pass of a single sample."""
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, *INPUT_SHAPE, device=device))
    return float(counter.get_total_flops())


def _timed(fn, steps: int, device: torch.device) -> float:
    """Seconds per call of `fn`, after one untimed warm-up call."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    tic = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - tic) / steps


def sgemm_gflops(device: torch.device, n: int = 2048, steps: int = 5) -> float:
    """GFLOP/s of an n x n float32 matrix product (2 n^3 flop) on `device`."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return 2 * n**3 / _timed(lambda: torch.mm(a, b), steps, device) / 1e9


def input_rates(shards: list[str], pristine: str, samples: int) -> dict:
    """Samples/s of `WavefieldDataset` items read from the files and from its cache."""
    from model.data import ShardIndex, normalisation_stats, read_reference
    from model.predict import unlabelled

    index = ShardIndex.build(shards)
    ids = index.sample[:samples]
    reference = read_reference(pristine, index.wave_shape, index)
    stats = normalisation_stats(index, ids[:16], reference, "sensor")
    dataset = WavefieldDataset(index, ids, unlabelled(ids), stats, reference, cache=True)
    rates = {}
    try:
        for name in ("read", "cached"):
            tic = time.perf_counter()
            for i in range(len(dataset)):
                dataset[i]
            rates[f"{name}_samples_per_s"] = round(len(dataset) / (time.perf_counter() - tic), 2)
    finally:
        dataset.close()
    rates["read_samples"] = int(len(ids))
    return rates


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=8, help="samples per step")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--channels-last", action="store_true",
                        help="channels-last memory format for model and input")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--data", nargs="+", metavar="SHARD.nc",
                        help="also time the input path on these shards (needs --pristine)")
    parser.add_argument("--pristine", metavar="P.nc", help="pristine reference for --data")
    parser.add_argument("--read-samples", type=int, default=120,
                        help="samples read to time the input path")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)
    if args.data and not args.pristine:
        parser.error("--data needs --pristine")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = MicroCrackPointNet().to(device)
    x = torch.randn(args.batch_size, *INPUT_SHAPE, device=device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    y = torch.rand(args.batch_size, 4, device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()

    def eval_step():
        with torch.no_grad():
            model(x)

    flop = forward_flop_per_sample(model, device)
    model.train()
    train_s = _timed(train_step, args.steps, device)
    model.eval()
    eval_s = _timed(eval_step, args.steps, device)
    train_rate = args.batch_size / train_s
    roof = sgemm_gflops(device)
    result = {
        "train_samples_per_s": round(train_rate, 3),
        "eval_samples_per_s": round(args.batch_size / eval_s, 3),
        "params": parameter_counts(model)["total"],
        "gflop_per_sample": round(flop / 1e9, 4),
        "achieved_gflops": round(3 * flop * train_rate / 1e9, 3),
        "sgemm_roof_gflops": round(roof, 1),
        "roof_share": round(3 * flop * train_rate / 1e9 / roof, 3),
        "channels_last": args.channels_last,
        "batch_size": args.batch_size,
        "device": str(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
    }
    print(f"MicroCrackPointNet, input (B, {', '.join(map(str, INPUT_SHAPE))}), batch {args.batch_size}, "
          f"{args.steps} timed steps after 1 warm-up, device {result['device']}")
    print(f"  forward: {result['gflop_per_sample']} GFLOP/sample (FlopCounterMode); "
          f"params {result['params']:,} (incl. BatchNorm running stats)")
    print(f"  train: {result['train_samples_per_s']} samples/s -> "
          f"{result['achieved_gflops']} GFLOP/s (3 x forward) = {result['roof_share']:.0%} of "
          f"the SGEMM roof ({result['sgemm_roof_gflops']} GFLOP/s)")
    print(f"  eval:  {result['eval_samples_per_s']} samples/s")
    if args.data:
        rates = input_rates(args.data, args.pristine, args.read_samples)
        for key in ("uncached", "cached"):
            read = rates["read_samples_per_s" if key == "uncached" else "cached_samples_per_s"]
            rates[f"epoch_samples_per_s_{key}"] = round(1 / (1 / read + 1 / train_rate), 3)
        result.update(rates)
        print(f"  input: {rates['read_samples_per_s']} samples/s read and conditioned, "
              f"{rates['cached_samples_per_s']} from the cache ({rates['read_samples']} samples)"
              f" -> epoch {rates['epoch_samples_per_s_uncached']} samples/s uncached, "
              f"{rates['epoch_samples_per_s_cached']} cached")
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
