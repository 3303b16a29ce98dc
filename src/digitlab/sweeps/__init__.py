"""Sweeps: plan a grid of runs, run it, summarise the trials, and judge the tutorial's claims."""
