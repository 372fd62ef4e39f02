"""noisebench: benchmark label-noise-robust training of token classifiers."""

__version__ = "0.1.0"
