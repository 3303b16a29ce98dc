"""Inference: any image -> 28x28 like MNIST (`images`), and classifying images with a trained model (`predict`)."""
