"""State isolation: each scanner sees the caller's state, never another scanner's changes."""

from __future__ import annotations

import collections
import copy
import json
import pickle
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import resilient_scan as rs
from resilient_scan._state import DictView, ListView

Found = list[dict[str, Any]]


def make_state() -> dict[str, Any]:
    return {
        "config": {"limits": {"max": 5}, "tickers": ["AAPL", "MSFT"], "flags": {"beta": False}},
        "prices": [[1.0, 2.0], [3.0]],
        "watchlist": [{"ticker": "NVDA", "notes": ["a"]}],
        "flag": 1,
        "tool_logs": [{"tool": "seed"}],
    }


def mutate_everything(state: Any) -> Found:
    state["flag"] = 2
    state["new_key"] = {"x": [1]}
    state["config"]["limits"]["max"] = 99
    state["config"]["tickers"].append("TSLA")
    state["config"]["tickers"][0] = "ZZZ"
    del state["config"]["flags"]
    state["config"]["added"] = True
    state["prices"][0].append(9.0)
    state["prices"][1][0] = -1.0
    state["prices"].insert(0, [])
    state["watchlist"][0]["notes"].append("b")
    state["watchlist"][0]["ticker"] = "AMD"
    state["tool_logs"].append({"tool": "mutator"})
    state.setdefault("other", []).append(1)
    state["config"].pop("tickers")
    return []


@pytest.mark.parametrize("concurrent", [True, False])
def test_the_callers_state_is_unchanged_after_scanners_mutate_it(concurrent: bool):
    state = make_state()
    snapshot = copy.deepcopy(state)
    tickers = state["config"]["tickers"]

    @rs.scanner(name="mutator_a")
    def mutator_a(state: Any) -> Found:
        return mutate_everything(state)

    @rs.scanner(name="mutator_b")
    def mutator_b(state: Any) -> Found:
        return mutate_everything(state)

    report = rs.ScanExecutor(concurrent=concurrent).run([mutator_a, mutator_b], state)

    assert [r.status for r in report.results] == ["ok", "ok"], report.failed
    assert state == snapshot
    assert state["config"]["tickers"] is tickers


@pytest.mark.parametrize("concurrent", [True, False])
def test_no_scanner_sees_another_scanners_changes(concurrent: bool):
    count = 4
    barrier = threading.Barrier(count) if concurrent else None
    seen: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    def writer(index: int) -> Any:
        name = f"writer{index}"

        @rs.scanner(name=name)
        def scan(state: Any) -> Found:
            before = rs.to_plain(state)
            state["flag"] = index
            state["config"]["limits"]["max"] = index
            state["config"]["tickers"].append(name)
            state["prices"][0][0] = float(index)
            state["watchlist"][0]["notes"].append(name)
            state[name] = True
            if barrier is not None:
                barrier.wait(timeout=5.0)  # every scanner has written before anyone reads
            after = rs.to_plain(state)
            with lock:
                seen[name] = {"before": before, "after": after}
            return []

        return scan

    original = make_state()
    report = rs.ScanExecutor(concurrent=concurrent, max_workers=count).run(
        [writer(i) for i in range(count)], original
    )

    assert [r.status for r in report.results] == ["ok"] * count, report.failed
    for index in range(count):
        name = f"writer{index}"
        expected = make_state()
        expected["tool_logs"] = []  # each scanner's tool log is its own, and starts empty
        assert seen[name]["before"] == expected, name
        expected["flag"] = index
        expected["config"]["limits"]["max"] = index
        expected["config"]["tickers"].append(name)
        expected["prices"][0][0] = float(index)
        expected["watchlist"][0]["notes"].append(name)
        expected[name] = True
        assert seen[name]["after"] == expected, name
    assert original == make_state()


class ToolExecutor:
    """Stands for an API client whose bound method sits in the state."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[str] = []

    def execute(self, tool: str) -> str:
        with self._lock:
            self.calls.append(tool)
        return f"ran {tool}"


def test_objects_that_cannot_be_copied_are_usable_by_scanners():
    lock = threading.Lock()
    client = ToolExecutor()
    left, right = socket.socketpair()

    def ticks() -> Iterator[int]:
        yield from range(100)

    generator = ticks()
    state: dict[str, Any] = {
        "lock": lock,
        "execute_tool": client.execute,
        "sock": left,
        "ticks": generator,
        "clients": {"primary": client, "lock": lock},
    }

    def uses_lock(state: Any) -> Found:
        assert state["lock"] is lock
        assert state["clients"]["lock"] is lock
        with state["lock"]:
            pass
        return [{"ticker": "LOCK"}]

    def uses_bound_method(state: Any) -> Found:
        assert state["execute_tool"]("quote") == "ran quote"
        assert state["clients"]["primary"] is client
        return [{"ticker": "TOOL"}]

    def uses_socket(state: Any) -> Found:
        state["sock"].sendall(b"ping")
        return [{"ticker": "SOCK"}]

    def uses_generator(state: Any) -> Found:
        assert state["ticks"] is generator
        return [{"ticker": f"T{next(state['ticks'])}"}]

    try:
        report = rs.ScanExecutor().run(
            [uses_lock, uses_bound_method, uses_socket, uses_generator], state
        )
        assert right.recv(4) == b"ping"
    finally:
        left.close()
        right.close()

    assert [r.status for r in report.results] == ["ok"] * 4, report.failed
    assert client.calls == ["quote"]
    assert state["lock"] is lock
    assert state["execute_tool"] == client.execute
    assert next(generator) == 1, "the scanner advanced the one real generator"


def test_a_big_state_is_not_copied_for_each_scanner():
    # A per-scanner deepcopy of a million-item price history, 40 times, takes many seconds;
    # views read it in place.
    big = {"AAPL": list(range(200_000))}
    state: dict[str, Any] = {"prices": big, "config": {"limit": 3}}
    seen: list[int] = []
    lock = threading.Lock()

    def reader(index: int) -> Any:
        @rs.scanner(name=f"reader{index}")
        def scan(state: Any) -> Found:
            history = state["prices"]["AAPL"]
            state["config"]["limit"] = index
            with lock:
                seen.append(history[-1] + len(history))
            return []

        return scan

    started = time.monotonic()
    report = rs.ScanExecutor(max_workers=8).run([reader(i) for i in range(40)], state)

    assert time.monotonic() - started < 3.0
    assert report.counts["ok"] == 40
    assert seen == [399_999] * 40
    assert state["config"]["limit"] == 3


def test_dict_and_list_subclasses_in_the_state_do_not_leak_changes():
    # defaultdicts and OrderedDicts are common in real states. Their nested lists must be as
    # protected as those of a plain dict.
    state: dict[str, Any] = {
        "by_sector": collections.defaultdict(list, {"tech": ["AAPL"]}),
        "ordered": collections.OrderedDict(first=["x"]),
    }
    snapshot = copy.deepcopy(state)

    def mutator(state: Any) -> Found:
        state["by_sector"]["tech"].append("MSFT")
        state["by_sector"]["energy"].append("XOM")
        state["ordered"]["first"].append("y")
        return []

    def observer(state: Any) -> Found:
        time.sleep(0.02)
        return [{"ticker": t} for t in state["by_sector"]["tech"]]

    report = rs.ScanExecutor().run([mutator, observer], state)

    assert [r.status for r in report.results] == ["ok", "ok"], report.failed
    assert state == snapshot
    assert [c["ticker"] for c in report.result("observer").candidates] == ["AAPL"]


def test_a_scanner_may_return_a_list_it_took_from_the_state():
    state = {"preloaded": [{"ticker": "aapl"}, {"ticker": "msft"}]}

    def cached(state: Any) -> Any:
        return state["preloaded"]

    result = rs.ScanExecutor().run([cached], state).result("cached")

    assert result.status == "ok", result.error
    assert [c["ticker"] for c in result.candidates] == ["AAPL", "MSFT"]


def test_candidates_and_tool_logs_built_from_state_values_are_plain_data():
    state = {
        "watchlist": [{"ticker": "aapl", "meta": {"sector": "tech", "tags": ["mega"]}}],
        "config": {"source": "cfg"},
        "tool_logs": [],
    }

    def from_state(state: Any) -> Found:
        state["tool_logs"].append(state["config"])
        return [state["watchlist"][0]]

    report = rs.ScanExecutor().run([from_state], state)

    assert report.result("from_state").status == "ok"
    data = json.loads(json.dumps(report.to_dict()))
    assert data["candidates"][0]["meta"] == {"sector": "tech", "tags": ["mega"]}
    assert data["tool_logs"] == [{"source": "cfg"}]
    assert type(report.candidates[0]["meta"]) is dict


# -- tool_logs --------------------------------------------------------------------------------


def logging_scanner(name: str, delay: float, entries: int = 2) -> Any:
    @rs.scanner(name=name)
    def scan(state: Any) -> Found:
        assert isinstance(state["tool_logs"], list)
        for number in range(entries):
            state["tool_logs"].append({"scanner": name, "n": number})
            time.sleep(delay / entries)
        return []

    return scan


@pytest.mark.parametrize("concurrent", [True, False])
def test_tool_logs_arrive_once_each_in_scanner_order_whatever_the_finishing_order(
    concurrent: bool,
):
    names = ["first", "second", "third", "fourth"]
    # Earlier scanners sleep longer, so they finish last when run concurrently.
    scanners = [logging_scanner(n, 0.01 * (len(names) - i)) for i, n in enumerate(names)]
    state = {"tool_logs": [{"tool": "seed"}]}

    report = rs.ScanExecutor(concurrent=concurrent).run(scanners, state)

    assert report.tool_logs == [{"scanner": n, "n": i} for n in names for i in range(2)]
    assert state["tool_logs"] == [{"tool": "seed"}]


def test_tool_logs_of_a_scanner_that_rebuilds_the_list_arrive_once():
    seed = {"tool": "seed"}

    def rebuilds(state: Any) -> Found:
        state["tool_logs"] = [*state["tool_logs"], {"tool": "rebuilt"}]
        return []

    def extends(state: Any) -> Found:
        state["tool_logs"] += [{"tool": "extended"}]
        return []

    report = rs.ScanExecutor().run([rebuilds, extends], {"tool_logs": [seed]})

    assert report.tool_logs == [{"tool": "rebuilt"}, {"tool": "extended"}]


def test_tool_logs_of_failed_and_timed_out_scanners_are_kept(release: threading.Event):
    def fails(state: Any) -> Found:
        state["tool_logs"].append("fails: called the API")
        raise RuntimeError("HTTP 500 error")

    def hangs(state: Any) -> Found:
        state["tool_logs"].append("hangs: called the API")
        release.wait()
        return []

    def fine(state: Any) -> Found:
        state["tool_logs"].append("fine: called the API")
        return []

    state: dict[str, Any] = {"tool_logs": []}
    report = rs.ScanExecutor(timeout_seconds=30, scanners={"hangs": {"timeout_seconds": 0.1}}).run(
        [fails, hangs, fine], state
    )

    assert [r.status for r in report.results] == ["error", "timeout", "ok"]
    assert report.tool_logs == [
        "fails: called the API",
        "hangs: called the API",
        "fine: called the API",
    ]
    assert state["tool_logs"] == []


def test_tool_logs_created_by_scanners_when_the_state_has_none():
    def creates(state: Any) -> Found:
        state.setdefault("tool_logs", []).append("created")
        return []

    def untouched(state: Any) -> Found:
        assert "tool_logs" not in state
        return []

    state: dict[str, Any] = {}
    report = rs.ScanExecutor(concurrent=False).run([creates, untouched], state)

    assert [r.status for r in report.results] == ["ok", "ok"], report.failed
    assert report.tool_logs == ["created"]
    assert state == {}


# -- to_plain ---------------------------------------------------------------------------------


def test_to_plain_turns_views_into_plain_data():
    base = make_state()
    view = DictView(base)
    view["config"]["limits"]["max"] = 7
    view["prices"][1].append(4.0)

    plain = rs.to_plain(view)

    assert type(plain) is dict
    assert type(plain["config"]) is dict
    assert type(plain["config"]["limits"]) is dict
    assert type(plain["prices"]) is list
    assert type(plain["prices"][1]) is list
    assert plain["config"]["limits"]["max"] == 7
    assert plain["prices"][1] == [3.0, 4.0]
    json.dumps(plain)
    assert base == make_state()


def test_to_plain_rebuilds_plain_containers_that_hold_views():
    # Its docstring: "containers are rebuilt only along the way to a view", e.g. a candidate
    # a scanner built as {"ticker": ..., "meta": state["config"]}.
    view = DictView({"config": {"sector": "tech"}, "tags": ["a"]})
    built = {"ticker": "AAPL", "meta": view["config"], "tags": [view["tags"]]}

    plain = rs.to_plain(built)

    assert type(plain["meta"]) is dict
    assert type(plain["tags"][0]) is list
    assert json.loads(json.dumps(plain)) == {
        "ticker": "AAPL",
        "meta": {"sector": "tech"},
        "tags": [["a"]],
    }


def test_to_plain_leaves_other_values_alone():
    lock = threading.Lock()
    items = [1, 2]
    assert rs.to_plain(lock) is lock
    assert rs.to_plain(items) is items
    assert rs.to_plain("text") == "text"
    assert rs.to_plain(ListView([{"a": 1}])) == [{"a": 1}]


# -- DictView ---------------------------------------------------------------------------------


@pytest.fixture
def base() -> dict[str, Any]:
    return {"a": 1, "b": {"c": [1, 2, {"d": 3}]}, "e": [10, 20, 30]}


def test_dict_view_reads_like_the_dict(base: dict[str, Any]):
    view = DictView(base)

    assert view["a"] == 1
    assert view.get("missing") is None
    assert view.get("missing", 5) == 5
    with pytest.raises(KeyError):
        view["missing"]
    assert len(view) == 3
    assert list(view) == ["a", "b", "e"]
    assert "a" in view
    assert "missing" not in view
    assert view == base
    assert base == view
    assert view != {"a": 1}
    assert isinstance(view["b"], DictView)
    assert isinstance(view["e"], ListView)
    assert view["b"]["c"][2]["d"] == 3
    assert dict(view.items())["a"] == 1


def test_dict_view_writes_stay_in_the_view(base: dict[str, Any]):
    snapshot = copy.deepcopy(base)
    view = DictView(base)

    view["a"] = 2
    view["z"] = "new"
    assert view["a"] == 2
    assert view["z"] == "new"
    assert list(view) == ["a", "b", "e", "z"]
    assert len(view) == 4
    assert base == snapshot


def test_dict_view_deletes_stay_in_the_view(base: dict[str, Any]):
    snapshot = copy.deepcopy(base)
    view = DictView(base)

    del view["a"]
    assert "a" not in view
    assert len(view) == 2
    assert list(view) == ["b", "e"]
    with pytest.raises(KeyError):
        view["a"]
    with pytest.raises(KeyError):
        del view["a"]
    with pytest.raises(KeyError):
        del view["never"]
    view["a"] = "back"
    assert view["a"] == "back"
    assert list(view) == ["b", "e", "a"]  # as a dict: a key set again comes last
    view["tmp"] = 1
    del view["tmp"]
    assert "tmp" not in view
    assert len(view) == 3
    assert view.pop("e") == [10, 20, 30]
    assert "e" not in view
    assert base == snapshot


def test_dict_view_nested_writes_persist_in_the_view_only(base: dict[str, Any]):
    snapshot = copy.deepcopy(base)
    view = DictView(base)

    view["b"]["c"][2]["d"] = 4
    view["b"]["c"].append(5)
    view["b"]["new"] = True
    view["e"][0] = 11

    assert view["b"]["c"][2]["d"] == 4
    assert view["b"]["c"] == [1, 2, {"d": 4}, 5]
    assert view["b"]["new"] is True
    assert view["e"] == [11, 20, 30]
    assert view == {"a": 1, "b": {"c": [1, 2, {"d": 4}, 5], "new": True}, "e": [11, 20, 30]}
    assert base == snapshot


def test_dict_view_mixin_methods(base: dict[str, Any]):
    snapshot = copy.deepcopy(base)
    view = DictView(base)

    assert view.setdefault("a", 9) == 1
    assert view.setdefault("s", 9) == 9
    view.update({"u": 1}, v=2)
    assert view["u"] == 1
    assert view["v"] == 2
    plain = view.copy()
    assert type(plain) is dict
    plain["a"] = "only in the copy"
    assert view["a"] == 1
    assert sorted(view.keys()) == ["a", "b", "e", "s", "u", "v"]
    assert {**view}["s"] == 9
    assert base == snapshot


def test_two_views_of_one_dict_are_independent(base: dict[str, Any]):
    first, second = DictView(base), DictView(base)

    first["b"]["c"].append("first")
    second["b"]["c"].append("second")

    assert first["b"]["c"][-1] == "first"
    assert second["b"]["c"][-1] == "second"
    assert base["b"]["c"] == [1, 2, {"d": 3}]


def test_sets_in_the_state_are_private_copies():
    base: dict[str, Any] = {"seen": {"AAPL"}}
    view = DictView(base)

    view["seen"].add("MSFT")

    assert view["seen"] == {"AAPL", "MSFT"}
    assert base["seen"] == {"AAPL"}


# -- ListView ---------------------------------------------------------------------------------


def test_list_view_reads_like_the_list():
    base: list[Any] = [10, [1, 2], {"k": "v"}, 40]
    view = ListView(base)

    assert len(view) == 4
    assert view[0] == 10
    assert view[-1] == 40
    assert view[-3] == [1, 2]
    assert isinstance(view[1], ListView)
    assert isinstance(view[2], DictView)
    with pytest.raises(IndexError):
        view[4]
    with pytest.raises(IndexError):
        view[-5]
    assert list(view) == base
    assert view == base
    assert base == view
    assert view != [10]
    assert view != [*base[:3], 41]
    assert 40 in view
    assert 99 not in view
    assert view.index(40) == 3
    assert view.count(10) == 1
    assert list(reversed(view)) == list(reversed(base))


def test_list_view_slices():
    base = [0, 1, 2, 3, 4, 5]
    view = ListView(base)

    assert view[1:3] == [1, 2]
    assert view[::2] == [0, 2, 4]
    assert view[-2:] == [4, 5]
    assert view[::-1] == [5, 4, 3, 2, 1, 0]
    assert view[10:] == []
    view[1:3] = ["a", "b", "c"]
    assert view == [0, "a", "b", "c", 3, 4, 5]
    del view[::2]
    assert view == ["a", "c", 4]
    assert base == [0, 1, 2, 3, 4, 5]


def test_list_view_writes_stay_in_the_view():
    base: list[Any] = [1, [2, 3], {"k": [4]}]
    snapshot = copy.deepcopy(base)
    view = ListView(base)

    view[1].append(99)  # nested write before the list itself is copied
    view[-1]["k"].append(5)
    view.append(7)
    view.insert(0, 0)
    view[-1] = 8
    view.extend([9, 10])
    del view[-1]
    assert view.pop() == 9
    view.remove(1)
    view += [11]

    assert view == [0, [2, 3, 99], {"k": [4, 5]}, 8, 11]
    assert len(view) == 5
    assert base == snapshot


def test_list_view_nested_views_survive_the_first_write():
    base: list[Any] = [{"n": 1}, [1]]
    view = ListView(base)

    view[0]["n"] = 2  # a child view, made before the list is copied
    view.append("x")  # the copy keeps that child
    view[1].append(2)

    assert view == [{"n": 2}, [1, 2], "x"]
    assert base == [{"n": 1}, [1]]


def test_list_view_copy_and_hash():
    view = ListView([1, [2]])

    plain = view.copy()
    assert type(plain) is list
    assert plain == [1, [2]]
    with pytest.raises(TypeError):
        hash(view)


LIST_OPERATIONS: dict[str, tuple[Callable[[Any], Any], Any]] = {
    "sort": (lambda tickers: tickers.sort() or tickers, ["AAPL", "MSFT", "NVDA"]),
    "sorted-reverse": (lambda tickers: sorted(tickers, reverse=True), ["NVDA", "MSFT", "AAPL"]),
    "concatenate": (lambda tickers: tickers + ["SPY"], ["NVDA", "AAPL", "MSFT", "SPY"]),  # noqa: RUF005
    "concatenate-onto": (lambda tickers: ["SPY", *tickers], ["SPY", "NVDA", "AAPL", "MSFT"]),
    "list-plus-view": (lambda tickers: ["SPY"] + tickers, ["SPY", "NVDA", "AAPL", "MSFT"]),  # noqa: RUF005
    "repeat": (lambda tickers: tickers * 2, ["NVDA", "AAPL", "MSFT"] * 2),
}


@pytest.mark.parametrize("operation", LIST_OPERATIONS)
def test_state_lists_support_the_list_operations_scanners_use(operation: str):
    # Scanners are written against plain states: code that works on a list from a plain
    # dict must work on the same list as the executor hands it over.
    apply, expected = LIST_OPERATIONS[operation]
    base = {"tickers": ["NVDA", "AAPL", "MSFT"]}

    assert apply(list(base["tickers"])) == expected  # what the scanner's author tested
    assert apply(DictView(base)["tickers"]) == expected
    assert base == {"tickers": ["NVDA", "AAPL", "MSFT"]}


def test_a_copied_view_keeps_its_changes_apart_from_the_original():
    view = DictView({"a": 1, "nested": {"b": 2}})
    twin = copy.copy(view)
    twin["a"] = 99
    del twin["nested"]
    assert view["a"] == 1
    assert "nested" in view

    listing = ListView([1, 2, 3])
    other = copy.copy(listing)
    other.append(4)
    assert list(listing) == [1, 2, 3]
    assert list(other) == [1, 2, 3, 4]


def test_views_support_merging_and_ordering_like_dicts_and_lists():
    view = DictView({"a": 1, "b": 2})
    assert view | {"b": 3} == {"a": 1, "b": 3}
    assert {"b": 3, "c": 4} | view == {"a": 1, "b": 2, "c": 4}
    assert ListView([1, 2]) < [1, 3]
    assert ListView([2]) > ListView([1, 5])
    assert sorted([ListView([2]), ListView([1])]) == [[1], [2]]


def test_each_scanner_writes_a_tool_log_of_its_own_that_starts_empty():
    state: dict[str, Any] = {"tool_logs": [{"tool": "seed", "n": 0}]}
    seen: dict[str, list[Any]] = {}

    def writer(state: Any) -> Found:
        state["tool_logs"].append({"tool": "writer"})
        seen["writer"] = list(state["tool_logs"])
        return []

    def reader(state: Any) -> Found:
        time.sleep(0.02)
        seen["reader"] = list(state["tool_logs"])
        return []

    report = rs.ScanExecutor().run([writer, reader], state)

    assert seen == {"writer": [{"tool": "writer"}], "reader": []}
    assert state == {"tool_logs": [{"tool": "seed", "n": 0}]}
    assert report.tool_logs == [{"tool": "writer"}]


def test_a_defaultdict_state_gains_no_keys_from_lookups():
    state: collections.defaultdict[str, list[str]] = collections.defaultdict(list)
    state["seen"].append("AAPL")

    def looker(state: Any) -> Found:
        state["hits"].append("x")  # a defaultdict would add "hits" to the caller's state
        return []

    def checker(state: Any) -> Found:
        time.sleep(0.02)
        return [{"ticker": "HITS" if "hits" in state else "NONE"}]

    report = rs.ScanExecutor().run([looker, checker], state)

    assert dict(state) == {"seen": ["AAPL"]}
    assert report.result("checker").candidates[0]["ticker"] == "NONE"


def test_a_cyclic_tool_log_entry_does_not_break_the_run():
    def cyclic(state: Any) -> Found:
        entry: dict[str, Any] = {"tool": "cyclic"}
        entry["self"] = entry
        state["tool_logs"].append(entry)
        return [{"ticker": "CYC"}]

    report = rs.ScanExecutor().run([cyclic], {"tool_logs": []})

    assert report.result("cyclic").status == "ok"
    (entry,) = report.tool_logs
    assert entry["self"] is entry


def test_to_plain_keeps_cycles_inside_views():
    base: dict[str, Any] = {"name": "loop"}
    base["again"] = base
    plain = rs.to_plain(DictView({"loop": base}))
    assert type(plain["loop"]) is dict
    assert plain["loop"]["again"] is plain["loop"]


def test_a_hung_scanner_changing_its_tool_log_cannot_break_the_run(release: threading.Event):
    def busy(state: Any) -> Found:
        entry: dict[str, Any] = {"tool": "busy"}
        state["tool_logs"].append(entry)
        counter = 0
        while not release.is_set():  # keeps changing the entry after its timeout
            counter += 1
            entry[f"k{counter % 500}"] = counter
        return []

    for _ in range(2):
        report = rs.ScanExecutor(timeout_seconds=0.05).run([busy], {"tool_logs": []})
        assert report.result("busy").status == "timeout"
        # A frozen copy, or nothing: never an entry that keeps changing after the report.
        snapshot = json.dumps(report.tool_logs)
        time.sleep(0.01)
        assert json.dumps(report.tool_logs) == snapshot


def test_a_scanner_that_runs_scanners_keeps_them_apart():
    state: dict[str, Any] = {"cfg": {"limit": 1}, "tool_logs": []}

    def writer(state: Any) -> Found:
        state["cfg"]["limit"] = 99
        return []

    def reader(state: Any) -> Found:
        time.sleep(0.02)
        return [{"ticker": "LIM", "context": str(state["cfg"]["limit"])}]

    def outer(state: Any) -> Found:
        inner = rs.ScanExecutor().run([writer, reader], state)
        return inner.candidates

    report = rs.ScanExecutor().run([outer], state)

    assert report.candidates[0]["context"] == "1"
    assert state == {"cfg": {"limit": 1}, "tool_logs": []}


# -- views are real containers (issue 8.7) -----------------------------------------------------


def seed_state() -> dict[str, Any]:
    return {
        "meta": {"tickers": ["NVDA", "AMD"], "as_of": "2025-06-13", "limits": {"max": 5}},
        "rows": [{"ticker": "NVDA", "close": 131.2}, {"ticker": "AMD", "close": 161.0}],
        "prices": {"NVDA": [120.0, 125.5, 131.2], "AMD": [150.0, 155.0, 161.0]},
    }


def seen_by_a_scanner(state: dict[str, Any], look: Callable[[Any], Any]) -> Any:
    """Run one scanner on *state*; return what *look* made of its state."""
    seen: list[Any] = []

    def scanner(state: Any) -> Found:
        seen.append(look(state))
        return []

    rs.ScanExecutor().run([scanner], state)
    return seen[0]


def test_views_pass_isinstance_checks_for_dict_and_list():
    kinds = seen_by_a_scanner(
        seed_state(),
        lambda s: (isinstance(s, dict), isinstance(s["meta"], dict), isinstance(s["rows"], list)),
    )

    assert kinds == (True, True, True)


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(lambda v: json.dumps(v, sort_keys=True), id="json"),
        pytest.param(lambda v: json.dumps(v, indent=2), id="json-indent"),
        pytest.param(lambda v: repr(pickle.loads(pickle.dumps(v))), id="pickle"),  # noqa: S301
        pytest.param(lambda v: repr(copy.deepcopy(v)), id="deepcopy"),
        pytest.param(repr, id="repr"),
    ],
)
@pytest.mark.parametrize("key", ["meta", "rows", "prices"])
def test_views_encode_as_the_original_does(encode: Callable[[Any], str], key: str):
    state = seed_state()

    assert seen_by_a_scanner(state, lambda s: encode(s[key])) == encode(state[key])
    assert seen_by_a_scanner(state, encode) == encode(state)


def test_views_compare_equal_to_the_original():
    state = seed_state()

    equal = seen_by_a_scanner(
        state, lambda s: (s == state, state == s, s["rows"] == state["rows"], s["meta"] != {})
    )

    assert equal == (True, True, True, True)


def test_copies_of_views_are_plain_and_independent():
    state = seed_state()

    def look(s: Any) -> Any:
        deep = copy.deepcopy(s)
        loaded = pickle.loads(pickle.dumps(s))  # noqa: S301 - our own bytes
        deep["meta"]["tickers"].append("X")
        loaded["rows"][0]["close"] = 0.0
        return (
            type(deep),
            type(deep["meta"]),
            type(loaded["rows"]),
            s["meta"]["tickers"],
            s["rows"][0],
        )

    kinds = seen_by_a_scanner(state, look)

    assert kinds == (dict, dict, list, ["NVDA", "AMD"], {"ticker": "NVDA", "close": 131.2})
    assert state == seed_state()


def test_pandas_reads_views_as_it_reads_the_original():
    pandas = pytest.importorskip("pandas")
    state = seed_state()

    frames = seen_by_a_scanner(
        state,
        lambda s: (
            pandas.DataFrame(s["rows"]),
            pandas.DataFrame(s["prices"]),
            pandas.Series(s["meta"]["tickers"]),
        ),
    )

    assert frames[0].equals(pandas.DataFrame(state["rows"]))
    assert frames[1].equals(pandas.DataFrame(state["prices"]))
    assert frames[2].equals(pandas.Series(state["meta"]["tickers"]))


def test_c_level_readers_see_the_scanners_changes():
    def look(s: Any) -> Any:
        s["rows"][0]["close"] = 140.0
        s["meta"]["tickers"].append("TSLA")
        s["extra"] = {"n": 1}
        return json.dumps(s), dict(s)

    encoded, plain = seen_by_a_scanner(seed_state(), look)

    decoded = json.loads(encoded)
    assert decoded["rows"][0]["close"] == 140.0
    assert decoded["meta"]["tickers"] == ["NVDA", "AMD", "TSLA"]
    assert decoded["extra"] == {"n": 1}
    assert plain["meta"]["tickers"] == ["NVDA", "AMD", "TSLA"]


def test_plain_copies_made_inside_a_scanner_cannot_reach_the_callers_state():
    state = seed_state()

    def look(s: Any) -> None:
        dict(s)["meta"]["tickers"].append("X")  # dict(view): children are still views
        {**s}["prices"]["NVDA"].append(0.0)
        list(s["rows"])[0]["close"] = 0.0  # noqa: RUF015 - a plain copy of the list
        (s["rows"] + [])[1]["close"] = 0.0
        s.copy()["meta"]["limits"]["max"] = 99

    seen_by_a_scanner(state, look)

    assert state == seed_state()


def test_a_container_a_scanner_stores_is_handed_back_as_it_is():
    def look(s: Any) -> Any:
        own = {"k": 1}
        s["mine"] = own
        s["mine"]["k"] = 2
        items = [own]
        s["rows"].append(items)
        return own["k"], s["mine"] is own, s["rows"][-1] is items

    assert seen_by_a_scanner(seed_state(), look) == (2, True, True)


def test_the_same_container_twice_in_the_state_is_one_view():
    shared = {"limit": 1}
    state = {"a": shared, "b": shared}

    def look(s: Any) -> Any:
        s["a"]["limit"] = 2
        return s["b"]["limit"], s["a"] is s["b"]

    assert seen_by_a_scanner(state, look) == (2, True)
    assert shared == {"limit": 1}


def test_a_views_items_and_values_reverse_as_a_dicts_do():
    state = {"closes": {"2024-01-01": 1.0, "2024-01-02": 2.0}}
    seen: dict[str, Any] = {}

    def latest_first(view: Any) -> list[Any]:
        closes = view["closes"]
        seen["items"] = list(reversed(closes.items()))
        seen["values"] = list(reversed(closes.values()))
        seen["keys"] = list(reversed(closes))
        return []

    report = rs.ScanExecutor().run([latest_first], state)

    assert report.result("latest_first").status == "ok"
    plain = state["closes"]
    assert seen["items"] == list(reversed(plain.items()))
    assert seen["values"] == list(reversed(plain.values()))
    assert seen["keys"] == list(reversed(plain))
