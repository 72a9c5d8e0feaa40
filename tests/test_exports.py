import resilient_scan as rs


def test_all_is_sorted_and_exported():
    assert rs.__all__ == sorted(rs.__all__)
    missing = [name for name in rs.__all__ if not hasattr(rs, name)]
    assert missing == []
