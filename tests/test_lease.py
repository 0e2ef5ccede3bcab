"""A worker's lease (docora/lease.py): it runs from when a heartbeat was sent, not from
when its answer came, and a revoked lease stays lost until a new registration."""

from __future__ import annotations

import pytest

from docora.lease import Lease, LeaseLost


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_lease_runs_from_the_heartbeat_that_was_answered():
    clock = Clock()
    lease = Lease(4.0, clock=clock)
    assert not lease.valid()  # nothing heard yet: nothing may be sent
    lease.restart(clock.now)
    sent = clock.now + 1.0
    clock.now += 3.0  # the answer took two seconds to come
    lease.renewed(sent)
    clock.now = sent + 3.9
    lease.check()
    clock.now = sent + 4.0
    assert not lease.valid()
    with pytest.raises(LeaseLost):
        lease.check()


def test_an_older_answer_never_shortens_the_lease():
    clock = Clock()
    lease = Lease(4.0, clock=clock)
    lease.renewed(110.0)
    lease.renewed(105.0)  # a slow reply to an earlier beat
    clock.now = 113.0
    assert lease.valid()


def test_a_revoked_lease_stays_lost_until_the_worker_registers_again():
    clock = Clock()
    lease = Lease(4.0, clock=clock)
    lease.restart(clock.now)
    lease.revoke()
    lease.renewed(clock.now)  # a beat in flight when the worker was declared gone
    assert not lease.valid()
    lease.restart(clock.now)
    assert lease.valid()
