import resilient_scan as rs

# The public surface, pinned: adding or removing a name is a deliberate change to this list.
PUBLIC = {
    "PRIORITIES",
    "BreakerFunction",
    "BreakerPolicy",
    "BreakerStorage",
    "CacheInfo",
    "CachePolicy",
    "CacheStore",
    "CachedFunction",
    "CircuitBreaker",
    "CircuitOpenError",
    "Clock",
    "ConfigError",
    "MemoryCacheStore",
    "ResilientFunction",
    "ResilientScanError",
    "RetryPolicy",
    "ScanConsoleRenderer",
    "ScanExecutor",
    "ScanReport",
    "ScanResult",
    "ScanStatus",
    "ScanTimeout",
    "ScannerInfo",
    "ScannerObject",
    "ScannerRegistry",
    "SystemClock",
    "TimeoutPolicy",
    "abandoned_threads",
    "circuit_breaker",
    "configure_logging",
    "current_deadline",
    "merge_candidates",
    "normalize_candidate",
    "resilient",
    "retry",
    "retry_after",
    "scanner",
    "testing",
    "time_remaining",
    "timeout",
    "to_plain",
    "ttl_cache",
}


def test_public_names_are_pinned():
    assert set(rs.__all__) == PUBLIC
    assert len(rs.__all__) == len(PUBLIC)


def test_every_public_name_exists():
    assert [name for name in rs.__all__ if not hasattr(rs, name)] == []


def test_contract_names_are_public():
    contract = {
        "timeout", "retry", "ttl_cache", "circuit_breaker", "resilient", "scanner",
        "ScanExecutor", "ScanReport", "ScanResult", "ResilientScanError", "ScanTimeout",
        "CircuitOpenError", "ConfigError", "testing",
    }  # fmt: skip
    assert contract <= PUBLIC


def test_error_hierarchy_matches_the_contract():
    assert issubclass(rs.ScanTimeout, rs.ResilientScanError)
    assert issubclass(rs.ScanTimeout, TimeoutError)
    assert issubclass(rs.CircuitOpenError, rs.ResilientScanError)
    assert issubclass(rs.ConfigError, rs.ResilientScanError)
    assert issubclass(rs.ConfigError, ValueError)


def test_testing_aid_is_reachable():
    with rs.testing.no_waits():
        pass
