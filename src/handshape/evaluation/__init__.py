"""Scoring and showing results: `metrics` (errors, PCK, AUC, alignments), `protocols` (each
benchmark's scoring recipe), `predictions` (prediction files), `published` (the paper's Fig. 9
AUCs), `pck_figure` (our PCK beside them), `evaluate` (a network on a data set),
`benchmarks` (`handshape eval` on RHD, STB, FreiHAND) and `figures` (the notebook's figure)."""
