"""Order-book encoders: labels, datasets, DeepLOB (reference) and our temporal-convolution encoder."""
