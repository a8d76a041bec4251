"""Training SVIT-LLaVA with TRL: `svit_model.training.train` (what `svit train` calls), its arguments, the stage
recipes, the collator whose labels you can trust, the modality/length-grouped sampler and LoRA checkpoints.

Heavy modules import on use: `from svit_model.training.train import train`.
"""
