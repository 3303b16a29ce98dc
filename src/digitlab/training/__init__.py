"""Training: build the Keras model from a config, the named recipes, the training loops, distribution."""
