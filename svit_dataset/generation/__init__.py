"""Generate SVIT-style data from Visual Genome + COCO annotations with any OpenAI-compatible LLM.

Modules, in the order data flows through them:
`annotations` (VG/COCO readers, scenes JSONL) -> `prompts` (templates, rendering, token budget) ->
`client` (resilient async client) -> `parse` + `verify` (shape, source mentions, grounded boxes) ->
`ledger` (resume) -> `output` (release-format files, provenance, failures, cost) -> `run` (the job).
"""
