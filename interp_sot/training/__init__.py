"""Training the project's own SAE: harvest residual activations to disk, train with sae-lens, report quality.

The path is corpus -> ``harvest`` (fp16 activation shards, resumable) -> ``sae_training`` (sae-lens
``TopKTrainingSAE`` + ``SAETrainer`` fed from the shards, checkpointed) -> ``sae_quality`` (explained variance,
L0 and dead features on held-out tokens) -> an fp16 SAE folder in sae-lens's format that ``load_sae`` reads.
"""
