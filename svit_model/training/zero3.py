"""LoRA with the grounding rows under DeepSpeed ZeRO-3: two gaps between peft, TRL and DeepSpeed, closed here.

A LoRA run trains the rows of `<st>` and `<ed>` in the input embeddings and the LM head through peft's trainable
tokens (`model.lora_config`). Under ZeRO-3 those two matrices are partitioned, and running the path on CPU
(DeepSpeed's CPU accelerator, issue 20) found:

1. peft reads the rows' starting values by gathering the partitioned matrix and broadcasting the rows from rank 0;
   the receiving buffer is made on `cuda` whatever the accelerator ("right now, only CUDA is implemented"), which
   fails where there is none. `rows_gathered_on_the_weights_device` does the same gather and broadcast on the
   weight's own device; it replaces peft's only on machines without CUDA, so GPU runs keep peft's code.
2. TRL's fused LM head reads `lm_head.weight` and gathers it when it is a ZeRO parameter (`ds_status`). peft's
   wrapper serves a merged plain tensor instead, so the fused head fails on any device. `uses_fused_lm_head` says
   when that is so; the trainer then takes the loss from the model's own logits (transformers' `compute_loss`),
   the same loss, with its full logits in memory (`svit train --plan` counts them) and without TRL's entropy and
   token-accuracy logs.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def zero3_enabled() -> bool:
    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

    return is_deepspeed_zero3_enabled()


def rows_gathered_on_the_weights_device(self, weight: torch.Tensor, rows, embed_dim: int) -> torch.Tensor:
    """The `rows` of a partitioned `weight`, as every rank sees them: rank 0 reads them from the gathered
    matrix, the others receive them (what peft's `_collect_token_weights` does, on the weight's device)."""
    from peft.utils.integrations import gather_params_ctx

    distributed = dist.is_available() and dist.is_initialized()
    with gather_params_ctx([weight], modifier_rank=None):
        if not distributed or dist.get_rank() == 0:
            values = weight[rows].clone()
        else:
            values = torch.empty((len(rows), embed_dim), dtype=weight.dtype, device=weight.device)
    if distributed:
        dist.broadcast(values, src=0)
    return values


def use_rows_gathered_without_cuda() -> None:
    """Where ZeRO-3 runs without CUDA, peft's trainable tokens read their rows with
    `rows_gathered_on_the_weights_device` (gap 1 of the module docstring)."""
    if torch.cuda.is_available() or not zero3_enabled():
        return
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    TrainableTokensLayer._collect_token_weights = rows_gathered_on_the_weights_device


def uses_fused_lm_head(model) -> bool:
    """False when TRL's fused LM head cannot read the LM head: ZeRO-3 with peft's trainable rows on it (gap 2)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return not (zero3_enabled() and head is not None and hasattr(head, "token_adapter"))


def deepspeed_comm_on_the_process_group() -> None:
    """Under ZeRO-3, `from_pretrained` builds the model inside `deepspeed.zero.Init`, which sizes the batch by
    deepspeed.comm's world. On CPU (`use_cpu`) accelerate starts torch.distributed but leaves deepspeed.comm to the
    trainer, so a run of several processes would be sized as one and refused ("train_batch_size is not equal to
    ... world_size"). DeepSpeed is handed the process group that exists; on GPUs accelerate has done this already."""
    if not (zero3_enabled() and dist.is_available() and dist.is_initialized()):
        return
    import deepspeed
    import deepspeed.comm

    if not deepspeed.comm.is_initialized():
        deepspeed.init_distributed(dist_backend=dist.get_backend())
