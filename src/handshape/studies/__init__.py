"""Side-by-side studies (`handshape study`): variants of one experiment, trained and evaluated
alike.

A study is a YAML file (configs/study/*.yaml, or a path):

    title: Table 1 - loss terms            # heading of the markdown table
    experiment: quick                      # the base experiment every variant starts from
    shared_stages: [hourglass, pose_regressor]   # trained once, copied into every variant
    variants:                              # name -> key=value overrides of the base experiment
      Full: []
      -Normal: [train.loss_weights.normal=0]
      Transfer: {after: Full, overrides: [model.pose_from=latent]}   # continues Full's training
    paper:                                 # optional reference numbers, mm
      Full: {mesh: 7.95, pose: 8.03}

Every variant uses the same data, seed and budget; it differs only by its overrides. Stages
that no override touches (by default the hourglass and the pose regressor, which see neither the
head nor the mesh losses) are trained once under OUT/shared/ and copied into each variant, so a
study costs one pretraining plus one end-to-end stage per variant. Runs are resumable: a
variant with metrics is skipped, an interrupted one resumes (`run_pretraining`). W&B runs are
grouped by study. A variant ``after`` another one takes that variant's overrides, adds its own
(only ones the earlier variant's end-to-end stage did not see: where the joints come from, the
latent regressor, the transfer budget; `handshape.lit.reuse`), copies that variant's stages up
to the end-to-end one and trains what comes after. A folder made under other overrides or
settings is refused, not reused. With several GPUs, variants run side by side, one per GPU.
Results:
OUT/<variant>/eval/metrics.json, OUT/table.md, OUT/pck.png (every variant's 3D PCK curve) and
OUT/previews.png (the first validation images with each variant's prediction, and the ground
truth).

Modules: `spec` (the file and each variant's config), `sharing` (what variants may change),
`folders` (claiming variant folders, copying stages, reading results), `variant` (training and
evaluating one variant), `scheduler` (one variant per GPU), `report` (table and figures), `run`
(the whole study).
"""
