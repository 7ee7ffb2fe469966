"""Output checks compare counts exactly: `says` (tests/helpers.py) finds a phrase only with
nothing glued to its ends, where a substring check takes "12 failed" for "2 failed"."""

from helpers import says


def test_a_count_is_not_found_inside_a_larger_one():
    assert "2 failed" in "0 written, 12 failed"  # what a substring check gets wrong
    assert not says("0 written, 12 failed", "2 failed")
    assert not says("gives 1280", "gives 128")
    assert not says("gives 128.5 dims", "gives 128")
    assert not says("0.2 failed", "2 failed")
    assert not says("2 failedx", "2 failed")


def test_a_count_is_found_where_it_stands_alone():
    assert says("merge: 2 failed", "2 failed")
    assert says("2 failed", "2 failed")
    assert says("(2 failed)", "2 failed")
    assert says("1 written, 0 skipped, 1 failed files; 4 records", "1 written, 0 skipped, 1 failed")
    assert says("this model gives 1280.", "this model gives 1280")
    assert says("x; 1 truncated", "; 1 truncated")
    assert says("1 failed (1 invalid input (accepted))", "1 failed (1 invalid input (accepted))")
