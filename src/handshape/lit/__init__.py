"""Training: Lightning modules and their losses, the stage schedule and resuming, weak
supervision, and `pipeline` (train, then evaluate: `handshape pretrain` and every study
variant)."""
