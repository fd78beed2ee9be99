"""The per-pipeline thread budget (VITHEADS_THREADS) that lets queued experiments share the cores."""

import pytest
import torch

from vitheads import threads
from vitheads.outputs import StageError


def test_unset_budget_is_every_core(monkeypatch):
    monkeypatch.delenv(threads.ENV, raising=False)
    assert threads.budget() == threads.all_cores()


def test_budget_caps_torch_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv(threads.ENV, "1")
    try:
        assert threads.limit_torch() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5", "²"])
def test_bad_budget_is_refused_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv(threads.ENV, value)
    with pytest.raises(
        StageError, match=rf"environment variable VITHEADS_THREADS is '{value}'; expected a whole number >= 1"
    ):
        threads.budget()
