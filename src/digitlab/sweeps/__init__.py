"""Sweeps: plan a grid of runs (`plan`), run it (`runner`), summarise the trials (`summary`), and judge
the tutorial's claims (`studies`).

A sweep folder holds:

    sweep.json                       what was swept (grids, fixed settings, seeds, trial names)
    trials/<name>/                   one ordinary run folder per trial (config.json, metrics.json, ...)
    sweep.csv                        one row per trial: every setting, its status and metrics
    sweep.md                         mean and standard deviation over seeds per configuration
                                     (and, for a study, a plain-language verdict on each claim)
    sweep_accuracy_vs_time.png       test accuracy against training time
    sweep_factors.png                one panel per factor
"""
