"""Training SVIT-LLaVA with TRL: `svit_model.training.train` (what `svit train` runs), its arguments, the stage
training recipes (`training_recipes/`), the collator on TRL's, the sample transform, the modality/length-grouped
sampler and LoRA checkpoints.

Heavy modules import on use: `from svit_model.training.train import train`.
"""
