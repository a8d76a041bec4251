"""Fixtures shared by several test modules: tiny tokenizer and processors, built once per session through
the same functions a real checkpoint goes through (svit_model.tiny)."""

from __future__ import annotations

import pytest

from svit_model.tiny import build_tiny_processor, build_tiny_tokenizer


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_processor(tiny_tokenizer):
    """LLaVA-1.5's `pad` mode: boxes move into the padded square."""
    return build_tiny_processor(tiny_tokenizer, pad=True)


@pytest.fixture(scope="session")
def tiny_processor_unpadded(tiny_tokenizer):
    return build_tiny_processor(tiny_tokenizer, pad=False)


@pytest.fixture
def no_model_load(monkeypatch):
    """`svit train` fails the test if it loads the model: what is checked must be checked before that."""
    from svit_model.training import train as train_module

    def trap(*args, **kwargs):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(train_module, "load_model", trap)
