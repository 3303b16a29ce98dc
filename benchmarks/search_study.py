"""TPE against random search: the best validation accuracy after N trials, over several search seeds.

Each search is `digitlab sweep --search tpe|random` through the library (`search.run_search`), its trials
trained one after the other in this process to keep them cheap: one epoch on the first 5,000 MNIST
training images with a fifth of them held out for validation, over learning rate 1e-5..1e-1 (log scale),
dropout 0, 0.2 or 0.4, batch size 32, 128 or 512 and hidden layers of 32, 128 or 512 units (choices
rather than ranges where a value changes the compiled program, so that most trials find theirs in JAX's
cache). The pruner is
off (one epoch leaves it nothing to judge). Prints the best validation accuracy of each search.

    .venv/bin/python benchmarks/search_study.py                       # 20 trials, search seeds 0, 1, 2
    .venv/bin/python benchmarks/search_study.py --trials 30 --seeds 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3, help="search seeds 0..N-1, each for both samplers")
    parser.add_argument("--images", type=int, default=5000, help="training images per trial (before the split)")
    arguments = parser.parse_args()

    from digitlab.sweeps.search import Range, SearchPlan, run_search

    space = {"learning_rate": Range(1e-5, 1e-1, log=True), "dropout": [0.0, 0.2, 0.4], "batch_size": [32, 128, 512],
             "hidden_units": [(32,), (128,), (512,)]}
    fixed = {"epochs": 1, "max_train_images": arguments.images, "validation_split": 0.2}
    best: dict[str, list[float]] = {"tpe": [], "random": []}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="digitlab-search-study-") as scratch:
        for seed in range(arguments.seeds):
            for sampler in ("tpe", "random"):
                plan = SearchPlan(space=space, fixed=fixed, sampler=sampler, trials=arguments.trials,
                                  search_seed=seed, prune=False)
                result = run_search(plan, Path(scratch) / f"{sampler}-{seed}", isolate=False)
                best[sampler].append(result.best.objective)
                settings = ", ".join(f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}"
                                     for name, value in result.best.params.items())
                print(f"search seed {seed}, {sampler:>6}: best validation accuracy {result.best.objective:.2%} "
                      f"(trial {result.best.number}: {settings})", flush=True)
    print(f"\n{arguments.trials} trials per search, {arguments.seeds} search seeds, "
          f"{time.perf_counter() - started:.0f} s in all")
    print("| search seed | TPE | random | TPE - random (points) |")
    print("|---|---|---|---|")
    for seed, (tpe, random) in enumerate(zip(best["tpe"], best["random"], strict=True)):
        print(f"| {seed} | {tpe:.2%} | {random:.2%} | {(tpe - random) * 100:+.2f} |")
    tpe_mean, random_mean = statistics.mean(best["tpe"]), statistics.mean(best["random"])
    print(f"| mean | {tpe_mean:.2%} | {random_mean:.2%} | {(tpe_mean - random_mean) * 100:+.2f} |")


if __name__ == "__main__":
    main()
