from semfi_batch.plan import (
    default_seed,
    even_selection,
    inbetween_times,
    mol_branch,
    round_up_4k1,
    semfi_frame_count,
)


def test_round_up_4k1():
    assert [round_up_4k1(n) for n in range(1, 11)] == [1, 5, 5, 5, 5, 9, 9, 9, 9, 13]


def test_semfi_frame_count_and_selection_for_every_gap():
    for gap in range(1, 101):
        n = semfi_frame_count(gap)
        assert (n - 1) % 4 == 0 and n >= gap + 2 and n - 4 < gap + 2
        picked = even_selection(n, gap)
        assert len(picked) == gap == len(set(picked))
        assert all(0 < i < n - 1 for i in picked)
        assert picked == sorted(picked)


def test_mol_branch_buckets():
    expected = {1: 1, 5: 1, 7: 1, 9: 2, 13: 2, 17: 3, 25: 3, 29: 4, 49: 4, 53: 5, 73: 5, 77: 6, 81: 6, 401: 6}
    assert {n: mol_branch(n) for n in expected} == expected


def test_inbetween_times_are_even():
    assert inbetween_times(3) == [0.25, 0.5, 0.75]


def test_default_seed_is_stable():
    assert default_seed("shot_001") == default_seed("shot_001")
    assert default_seed("shot_001") != default_seed("shot_002")
    assert 0 <= default_seed("x") < 2**63
