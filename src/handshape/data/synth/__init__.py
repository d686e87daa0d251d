"""The synthetic data set: scene sampling, rendering, sharded storage and reading."""
