"""A reduced kill-chaos run (the full one is `make chaos`)."""

import pytest

from tests.chaos import CLIP, chaos


def test_random_kills_lose_nothing_and_duplicate_nothing(tmp_path):
    if not CLIP.exists():
        pytest.skip(f"real footage not found: {CLIP}")
    result = chaos(kills=6, rows=6, max_wait=2.0, seed=1234, work=tmp_path)
    assert result.kills == 6 and result.rounds >= 1 and result.splice_kills >= 1
    assert result.duplicates == 0 and result.mismatches == 0, result.problems
