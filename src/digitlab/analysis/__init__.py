"""Analysis of trained runs: evaluation as plain data, metrics, comparison, plots and the HTML report.

The only package that imports matplotlib (in `plots`).
"""
