from __future__ import annotations

import asyncio
import contextvars

import pytest

from app.utils.loop_budget import LoopBudget
from app.utils.stage import Stage
from tests.fakes.clock import Clock
from tests.utils.test_loop_budget import Iterations

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


async def test_calls_made_in_one_iteration_run_back_to_back_before_any_caller_resumes() -> None:
    log: list[str] = []

    def work(name: str) -> str:
        log.append(f"ran {name}")
        return name.upper()

    stage = Stage(work)

    async def caller(name: str) -> str:
        result = await stage(name)
        log.append(f"resumed {name}")
        return result

    results = list(await asyncio.gather(caller("a"), caller("b"), caller("c")))

    assert results == ["A", "B", "C"]
    assert log == ["ran a", "ran b", "ran c", "resumed a", "resumed b", "resumed c"]
    assert stage.queued == 0


async def test_a_failure_goes_to_its_own_caller_only() -> None:
    def work(n: int) -> int:
        if n == 2:
            raise ValueError("two")
        return n * 10

    stage = Stage(work)
    results = await asyncio.gather(stage(1), stage(2), stage(3), return_exceptions=True)

    assert results[0] == 10
    assert isinstance(results[1], ValueError)
    assert str(results[1]) == "two"
    assert results[2] == 30


async def test_a_caller_cancelled_while_queued_is_skipped() -> None:
    ran: list[int] = []

    def work(n: int) -> int:
        ran.append(n)
        return n

    stage = Stage(work)
    first = asyncio.ensure_future(stage(1))
    second = asyncio.ensure_future(stage(2))
    third = asyncio.ensure_future(stage(3))
    await asyncio.sleep(0)  # all three queued; the stage runs in the next iteration
    second.cancel()

    assert await first == 1
    assert await third == 3
    assert second.cancelled()
    assert ran == [1, 3]


async def test_calls_beyond_the_budget_run_in_later_iterations_in_order() -> None:
    clock = Clock(100.0)
    iterations = Iterations()
    ran: list[tuple[int, int]] = []

    def work(n: int) -> int:
        ran.append((n, iterations.count))
        clock.now += 0.6  # each call works 0.6 s of a 1 s budget
        return n

    stage = Stage(work, budget=LoopBudget(budget_s=1.0, clock=clock))
    iterations.start()
    try:
        assert await asyncio.gather(*(stage(n) for n in range(5))) == [0, 1, 2, 3, 4]
    finally:
        iterations.stop()

    assert [n for n, _ in ran] == [0, 1, 2, 3, 4]
    # Two fit in a budget (the second starts at 0.6 s, the third would start at 1.2 s); each
    # later group runs one iteration after the one before, with other work in between.
    groups = [it for _, it in ran]
    assert groups[0] == groups[1] < groups[2] == groups[3] < groups[4]
    assert groups[2] - groups[0] == 1
    assert groups[4] - groups[2] == 1


async def test_a_call_longer_than_the_budget_still_runs_alone() -> None:
    clock = Clock()

    def work(n: int) -> int:
        clock.now += 5.0
        return n

    stage = Stage(work, budget=LoopBudget(budget_s=1.0, clock=clock))
    assert list(await asyncio.gather(stage(1), stage(2))) == [1, 2]


async def test_turns_starting_after_the_stage_in_its_iteration_wait_for_the_next() -> None:
    # The stage spends from the budget the turns' starts share: a start in the same iteration
    # after a stage that used the budget up waits, as it would behind other starts.
    clock = Clock(100.0)
    budget = LoopBudget(budget_s=1.0, clock=clock)
    iterations = Iterations()
    order: list[tuple[str, int]] = []

    def work(n: int) -> int:
        order.append((f"plan {n}", iterations.count))
        clock.now += 1.0
        return n

    stage = Stage(work, budget=budget)

    async def start_after_the_stage() -> None:
        await asyncio.sleep(0)  # ready in the iteration the stage runs in, after it
        await budget.turn()
        order.append(("start", iterations.count))

    iterations.start()
    try:
        await asyncio.gather(stage(1), start_after_the_stage())
    finally:
        iterations.stop()

    (plan, plan_iteration), (start, start_iteration) = order
    assert (plan, start) == ("plan 1", "start")
    assert start_iteration > plan_iteration


async def test_each_call_runs_in_its_callers_context() -> None:
    def work() -> str:
        return WHO.get()

    stage = Stage(work)

    async def caller(name: str) -> str:
        WHO.set(name)
        return await stage()

    assert list(await asyncio.gather(caller("ann"), caller("bob"))) == ["ann", "bob"]


def test_a_call_from_another_loop_while_calls_are_queued_runs_at_once() -> None:
    stage = Stage(lambda n: n + 1)
    first = asyncio.new_event_loop()
    try:
        queued = first.create_task(stage(1))
        # One iteration of the first loop: the call is queued, the stage not run yet.
        first.call_soon(first.stop)
        first.run_forever()
        assert stage.queued == 1

        assert asyncio.run(stage(10)) == 11  # another loop: not mixed into the first's queue
        assert stage.queued == 1

        assert first.run_until_complete(queued) == 2
        assert stage.queued == 0
    finally:
        first.close()


@pytest.mark.parametrize("budget_s", [0.0, 1.0])
async def test_a_lone_call_returns_its_result(budget_s: float) -> None:
    stage = Stage(lambda a, *, b: a + b, budget=LoopBudget(budget_s=budget_s, clock=Clock()))
    assert await stage(2, b=3) == 5
