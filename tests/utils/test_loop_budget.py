from __future__ import annotations

import asyncio

import pytest

from app.utils.loop_budget import LoopBudget
from tests.fakes.clock import Clock

START = 100.0
"""Where the clocks start: the turns' small work steps add up to exactly the budget here (at
larger times the float sums land a hair either side of it)."""


class Iterations:
    """Counts event-loop iterations: a callback that schedules itself again runs once in each."""

    def __init__(self) -> None:
        self.count = 0
        self._handle: asyncio.Handle | None = None

    def start(self) -> None:
        self._handle = asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        self.count += 1
        self._handle = asyncio.get_running_loop().call_soon(self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


async def run_turns(
    budget: LoopBudget, clock: Clock, *, turns: int, work_s: float
) -> list[tuple[int, int]]:
    """Start `turns` turns in one iteration; each works `work_s` once let through. Returns
    (turn, iteration it went on in), in the order they went on."""
    iterations = Iterations()
    started: list[tuple[int, int]] = []

    async def one(number: int) -> None:
        await budget.turn()
        started.append((number, iterations.count))
        clock.now += work_s

    iterations.start()
    try:
        await asyncio.gather(*(one(n) for n in range(turns)))
    finally:
        iterations.stop()
    return started


async def test_a_lone_turn_goes_straight_on() -> None:
    clock = Clock(START)
    budget = LoopBudget(budget_s=0.003, clock=clock)
    started = await run_turns(budget, clock, turns=1, work_s=0.050)
    assert [n for n, _ in started] == [0]
    assert budget.waiting == 0


async def test_turns_beyond_the_budget_start_in_later_iterations_in_arrival_order() -> None:
    clock = Clock(START)
    budget = LoopBudget(budget_s=0.003, clock=clock)
    started = await run_turns(budget, clock, turns=10, work_s=0.001)

    assert [n for n, _ in started] == list(range(10))
    per_iteration: dict[int, int] = {}
    for _, iteration in started:
        per_iteration[iteration] = per_iteration.get(iteration, 0) + 1
    # 1 ms each, 3 ms per iteration: never more than three turns start in one iteration.
    assert max(per_iteration.values()) == 3
    assert len(per_iteration) >= 4
    assert budget.waiting == 0


async def test_a_turn_longer_than_the_budget_still_goes_on_alone() -> None:
    clock = Clock(START)
    budget = LoopBudget(budget_s=0.003, clock=clock)
    started = await run_turns(budget, clock, turns=3, work_s=0.020)
    iterations = [iteration for _, iteration in started]
    assert [n for n, _ in started] == [0, 1, 2]
    assert len(set(iterations)) == 3


class Turns:
    """Turns through one budget; each works 1 ms of the clock once let through. `order` is the
    order they went on in."""

    def __init__(self, *, budget_s: float) -> None:
        self.clock = Clock(START)
        self.budget = LoopBudget(budget_s=budget_s, clock=self.clock)
        self.order: list[str] = []

    async def one(self, name: str) -> None:
        await self.budget.turn()
        self.order.append(name)
        self.clock.now += 0.001

    def start(self, *names: str) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self.one(name)) for name in names]


async def test_other_ready_work_runs_between_the_iterations() -> None:
    turns = Turns(budget_s=0.002)

    async def probe() -> None:
        # Ready after the first iteration, like a timer or a socket that became readable.
        await asyncio.sleep(0)
        turns.order.append("probe")

    await asyncio.gather(*turns.start(*(f"turn {n}" for n in range(6))), probe())
    # Without the budget all six turns would run before the probe.
    assert turns.order.index("probe") < turns.order.index("turn 5")
    assert turns.order.index("probe") >= 2


async def test_new_turns_queue_behind_those_already_waiting() -> None:
    turns = Turns(budget_s=0.001)
    first = turns.start(*(f"early {n}" for n in range(4)))
    await asyncio.sleep(0)  # the early ones arrive: one goes on, three wait
    assert turns.budget.waiting == 3
    late = turns.start("late 0", "late 1")
    await asyncio.gather(*first, *late)
    assert turns.order == ["early 0", "early 1", "early 2", "early 3", "late 0", "late 1"]


async def test_a_cancelled_waiting_turn_gives_up_its_place() -> None:
    turns = Turns(budget_s=0.001)
    tasks = turns.start("0", "1", "2", "3")
    await asyncio.sleep(0)
    assert turns.order == ["0"]
    tasks[1].cancel()
    with pytest.raises(asyncio.CancelledError):
        await tasks[1]
    await asyncio.gather(tasks[0], *tasks[2:])
    assert turns.order == ["0", "2", "3"]
    assert turns.budget.waiting == 0


async def test_a_turn_cancelled_after_its_release_does_not_hold_up_the_rest() -> None:
    turns = Turns(budget_s=0.001)
    tasks = turns.start("0", "1", "2")
    await asyncio.sleep(0)  # 0 goes on; 1 and 2 wait
    await asyncio.sleep(0)  # the next iteration releases 1
    tasks[1].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[1], asyncio.CancelledError)
    assert turns.order == ["0", "2"]
    assert turns.budget.waiting == 0


async def test_other_budgeted_work_spends_from_the_same_budget_without_counting_as_a_start() -> (
    None
):
    clock = Clock(START)
    budget = LoopBudget(budget_s=0.003, clock=clock)
    assert budget.allows()  # opens the iteration's window
    clock.now += 0.002
    assert budget.allows()
    clock.now += 0.001
    assert not budget.allows()  # the budget is spent
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # a later iteration: a fresh budget
    assert budget.allows()
    assert budget.waiting == 0
