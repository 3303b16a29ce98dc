"""Data: IDX files, where they come from, the verified cache -> uint8 arrays; the tutorial's array steps.

Imports nothing from training, analysis, inference or web, and never Keras or JAX.
"""
