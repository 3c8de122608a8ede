"""A CSV manifest's problems: every one of a row says the row's CSV line, and a cell that does not fit its
column hides nothing else (`manifest validate` lists every problem in one pass)."""

from __future__ import annotations

import pytest

from semfi_batch.cli import main
from semfi_batch.errors import ManifestError
from semfi_batch.manifest import load_manifest


def problems_of(csv) -> list[tuple[int | None, str | None, str]]:
    with pytest.raises(ManifestError) as err:
        load_manifest(csv)
    return [(p.row, p.column, p.message) for p in err.value.problems]


def test_every_row_problem_says_its_csv_line(clip_factory, tmp_path):
    clip = clip_factory(20)
    csv = tmp_path / "m.csv"
    csv.write_text(
        "pair_id,source,start_frame,end_frame\n"
        f"a,{clip},5,3\n"  # line 2: range
        "\n"  # a blank line is no row, but counts as a line
        f"b,{clip},4,99\n"  # line 4: past the end
        f"a,{clip},1,3\n"  # line 5: duplicate of line 2's pair_id
        f"c,{tmp_path / 'nowhere.mp4'},1,3\n"  # line 6: missing file
    )
    found = problems_of(csv)
    assert [(row, column) for row, column, _ in found] == [
        (0, "end_frame"),
        (1, "end_frame"),
        (2, "pair_id"),
        (3, "source"),
    ]
    assert [message.rsplit(" (", 1)[-1] for _, _, message in found] == ["line 2)", "line 4)", "line 5)", "line 6)"]
    assert found[2][2] == "duplicate of row 0 on line 2 (line 5)"


def test_a_cell_that_does_not_fit_hides_no_other_problem(clip_factory, tmp_path, capsys):
    clip = clip_factory(20)
    csv = tmp_path / "bad.csv"
    csv.write_text(
        f"pair_id,source,start_frame,end_frame,gap_frames\na,{clip},5,3,\nb,{clip},x,99,\nc,{clip},1,4,one,extra\n"
    )
    found = problems_of(csv)
    assert [(row, column) for row, column, _ in found] == [
        (0, "end_frame"),  # range, beside the type errors of other rows
        (1, "start_frame"),  # 'x'
        (1, "end_frame"),  # the same row's other cells are still checked
        (2, None),  # more cells than the header
        (2, "gap_frames"),  # 'one'
    ]
    assert all(message.endswith(f"(line {row + 2})") for row, _, message in found)
    assert not any("is required" in message for _, _, message in found)  # a bad cell is not reported again
    assert main(["manifest", "validate", str(csv)]) == 2
    err = capsys.readouterr().err
    assert "5 problems" in err
    assert "row 1, pair_id='b', column 'start_frame': must be a whole number, got 'x' (line 3)" in err
