"""Training: Lightning modules and their losses, the stage schedule and resuming, weak
supervision, and `pipeline` (train, then evaluate: `handshape pretrain` and every study
variant).

Training gives the same numbers on every x86-64 CPU: MKL and oneDNN (torch's CPU matrix
products and convolutions) choose their kernels by the processor's instruction set, and an
AVX-512 machine and an AVX2 one part within a few training steps (measured: docs/training.md,
Reproducibility). Importing this package pins both to AVX2, which every such machine has, for
about 9 % of a training step. The libraries read these variables at their first call, so the
pin holds when nothing has multiplied matrices on the CPU before training is imported (every
handshape command); a value the user set is kept. Inference (`handshape.inference`) is left
on the fastest kernels: about 20 % faster, and its answers need no bit-for-bit agreement across
machines.
"""

import os

for _variable, _value in (("MKL_CBWR", "AVX2"), ("ONEDNN_MAX_CPU_ISA", "AVX2")):
    os.environ.setdefault(_variable, _value)
