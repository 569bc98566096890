"""Pure logic of the listwise reranker: window arithmetic and answer parsing."""

import itertools

import pytest

from rankbench.harness.errors import ConfigError
from rankbench.rerankers.permutation import labels, parse_permutation
from rankbench.rerankers.windows import sliding_windows


def test_rankgpt_windows_at_100_20_10():
    windows = sliding_windows(100, 20, 10)
    assert len(windows) == 9
    assert [start for start, _ in windows] == [80, 70, 60, 50, 40, 30, 20, 10, 0]
    assert all(end - start == 20 for start, end in windows)


def test_depth_not_a_multiple_of_the_stride_still_reaches_the_top():
    windows = sliding_windows(95, 20, 10)
    assert windows[0] == (75, 95)
    assert windows[-1] == (0, 15)
    covered = {i for start, end in windows for i in range(start, end)}
    assert covered == set(range(95))


def test_depth_below_the_window_is_one_window():
    assert sliding_windows(7, 20, 10) == [(0, 7)]
    assert sliding_windows(0, 20, 10) == []


def test_windows_overlap_by_window_minus_stride():
    windows = sliding_windows(50, 20, 5)
    for (start_a, end_a), (start_b, end_b) in itertools.pairwise(windows):
        if start_b > 0:
            assert end_a - end_b == 5 and start_a - start_b == 5


@pytest.mark.parametrize(("window", "stride"), [(20, 0), (20, 21), (0, 1)])
def test_bad_window_settings_name_the_key(window, stride):
    with pytest.raises(ConfigError, match=r"reranker\.(window|stride)"):
        sliding_windows(100, window, stride)


def test_parser_repairs_junk():
    parsed = parse_permutation("[3] > [3] > [25] > foo", 5)
    assert parsed.order == [2, 0, 1, 3, 4]
    assert parsed.malformed


def test_parser_on_an_empty_answer_keeps_the_order():
    parsed = parse_permutation("", 4)
    assert parsed.order == [0, 1, 2, 3]
    assert parsed.malformed


def test_parser_reads_a_list_inside_prose():
    parsed = parse_permutation("Sure! The ranking is: [2] > [1] > [3]. I hope 2024 helps.", 3)
    assert parsed.order == [1, 0, 2]
    assert not parsed.malformed


def test_parser_reads_bare_numbers_when_nothing_is_bracketed():
    assert parse_permutation("2 > 3 > 1", 3).order == [1, 2, 0]


def test_parser_counts_a_truncated_answer_as_malformed():
    parsed = parse_permutation("[4] > [1]", 4)
    assert parsed.order == [3, 0, 1, 2]
    assert parsed.malformed


def test_alpha_identifiers():
    assert labels(3, "alpha") == ["A", "B", "C"]
    parsed = parse_permutation("[C] > [A] > [A] > [Z]", 3, "alpha")
    assert parsed.order == [2, 0, 1]
    assert parsed.malformed
    with pytest.raises(ConfigError, match="at most 26"):
        labels(27, "alpha")
