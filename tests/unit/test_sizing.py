"""The loader's batch size: auto's decisions counted step by step on scripted feedback (no clock or I/O)."""

from __future__ import annotations

import pytest

from crmload.errors import ConfigError
from crmload.load.sizing import AutoSizer, BatchPolicy, Feedback, FixedSizer, parse_size


def _fast(sizer: AutoSizer, per_record_s: float, answers: int) -> list[int]:
    """Answer ``answers`` batches of the current size at ``per_record_s``; return the sizes sent."""
    sent = []
    for _ in range(answers):
        n = sizer.size()
        sent.append(n)
        sizer.record(Feedback(n, server_s=n * per_record_s))
    return sent


def test_grows_at_most_twice_per_clean_answer_up_to_the_dialect_maximum() -> None:
    sizer = AutoSizer(BatchPolicy(target_s=3.0, start=10), ceiling=lambda: 1000)
    # 1 ms a record: 3,000 would meet the target, so only the growth cap and then the maximum limit it.
    assert _fast(sizer, 0.001, 9) == [10, 20, 40, 80, 160, 320, 640, 1000, 1000]
    assert [reason for reason, _ in sizer.decisions].count("grow") == 7


def test_settles_on_the_size_that_meets_the_target_time() -> None:
    sizer = AutoSizer(BatchPolicy(target_s=2.0, start=10), ceiling=lambda: 1000)
    sent = _fast(sizer, 0.01, 12)  # 10 ms a record: 200 records take the 2 s aimed at
    assert sent[-3:] == [200, 200, 200]
    assert max(sent) == 200


def test_slow_answers_shrink_it_to_the_target() -> None:
    sizer = AutoSizer(BatchPolicy(target_s=2.0, start=400), ceiling=lambda: 1000)
    sizer.record(Feedback(400, server_s=400 * 0.05))  # 50 ms a record: 20 s for the batch
    assert sizer.size() == 40
    assert sizer.decisions[-1] == ("shrink", 40)


def test_a_lost_answer_halves_it_and_growth_waits_for_clean_answers() -> None:
    policy = BatchPolicy(target_s=3.0, start=800, cooldown=2)
    sizer = AutoSizer(policy, ceiling=lambda: 1000)
    sizer.record(Feedback(800, server_s=None, lost=1, epoch=sizer.epoch))
    assert sizer.size() == 400
    # Two clean, fast answers hold the size (cooldown); the third may grow again.
    assert _fast(sizer, 0.0001, 3) == [400, 400, 400]
    assert sizer.size() == 800
    assert [r for r, _ in sizer.decisions] == ["lost", "hold", "hold", "grow"]


def test_busy_answers_halve_it_down_to_one_never_below() -> None:
    sizer = AutoSizer(BatchPolicy(start=4), ceiling=lambda: 1000)
    for _ in range(5):
        sizer.record(Feedback(sizer.size(), server_s=0.1, busy=1, epoch=sizer.epoch))
    assert sizer.size() == 1
    assert [n for _, n in sizer.decisions] == [2, 1, 1, 1, 1]


def test_batches_out_together_when_trouble_came_cut_it_once() -> None:
    sizer = AutoSizer(BatchPolicy(start=400), ceiling=lambda: 1000)
    taken = [(sizer.size(), sizer.epoch) for _ in range(4)]  # four workers send at once
    for size, epoch in taken:  # and all four meet the same busy server
        sizer.record(Feedback(size, server_s=0.4, busy=1, epoch=epoch))
    assert sizer.size() == 200
    assert sizer.decisions == [("busy", 200)]
    # A batch sent after that cut that meets trouble again is news: it cuts again.
    sizer.record(Feedback(sizer.size(), lost=1, epoch=sizer.epoch))
    assert sizer.size() == 100


def test_never_exceeds_the_clients_batch_limit_as_it_falls() -> None:
    limit = [1000]
    sizer = AutoSizer(BatchPolicy(start=500), ceiling=lambda: limit[0])
    assert sizer.size() == 500
    limit[0] = 250  # a MaxBatchSize fault said 250
    assert sizer.size() == 250
    _fast(sizer, 0.0001, 5)
    assert sizer.size() == 250


def test_a_short_tail_batch_does_not_pull_the_size_down() -> None:
    sizer = AutoSizer(BatchPolicy(target_s=3.0, start=500), ceiling=lambda: 1000)
    sizer.record(Feedback(7, server_s=7 * 0.001))  # the input's last 7 rows, fast
    assert sizer.size() == 500  # held: 7 rows grow nothing, and their speed is no reason to shrink
    assert sizer.decisions == [("hold", 500)]


def test_fixed_size_keeps_its_number_under_the_limit() -> None:
    limit = [1000]
    fixed = FixedSizer(300, ceiling=lambda: limit[0])
    fixed.record(Feedback(300, busy=3))
    assert fixed.size() == 300
    limit[0] = 100
    assert fixed.size() == 100


@pytest.mark.parametrize(("text", "value"), [("auto", "auto"), ("AUTO", "auto"), ("1", 1), ("1000", 1000)])
def test_parse_size(text: str, value: object) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["0", "-3", "big", "1.5", ""])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_size(text)


def test_policy_is_checked() -> None:
    with pytest.raises(ConfigError):
        BatchPolicy(target_s=0)
    with pytest.raises(ConfigError):
        BatchPolicy(start=0)
    with pytest.raises(ConfigError):
        BatchPolicy(growth=1.0)
