"""Property-based tests: every input is either accepted, and trains with the documented stages and LRs,
or refused with a ValueError before any weight changes, leaving a learner that a new fit can use."""
import math, warnings
import numpy as np, torch
from hypothesis import given, settings, event, strategies as st, HealthCheck
from fastai_disclr.all import *
from fastai_disclr.test_utils import groups_learner, GroupProbe

good = st.floats(1e-6, 1.)
floats = st.one_of(good, good, good, st.sampled_from([0., -1e-3, float('nan'), float('inf')]))  # 1 in 4 invalid
lr_values = st.one_of(st.none(), floats, st.builds(slice, st.one_of(st.none(), floats), floats))
lrs_arg = st.one_of(lr_values, lr_values, st.lists(lr_values, min_size=0, max_size=6))  # one LR fits any number of stages
schedules = st.one_of(st.none(), st.dictionaries(st.integers(-1, 5), st.integers(-6, 5), max_size=5))

def pos(v): return isinstance(v, (int, float)) and math.isfinite(v) and v > 0

def valid_lr(v):
    if v is None: return True
    if isinstance(v, slice): return pos(v.stop) and (v.start is None or (pos(v.start) and v.start <= v.stop))
    return pos(v)

def default_schedule(n, n_epoch):
    """The documented default: ULMFiT's (the head, then a group more an epoch) where every group is thawed by the fit's
    midpoint, max(1, n_epoch // 2); else the head, then one thaw an epoch up to the midpoint, thaw j training the last
    1 + round(j (n-1) / k) groups, the last all of them"""
    k = max(1, n_epoch//2)
    if n-1 <= k: return {**{i: -(i+1) for i in range(n-1)}, n-1: 0}
    return {0: -1, **{j: (-(1 + round(j*(n-1)/k)) if j < k else 0) for j in range(1, k+1)}}

def oracle(n, sched, use_gu, lrs, ratio, n_epoch):
    "The documented rules, written independently of the package: is the input valid, and its stages {first epoch: frozen_idx}"
    if use_gu and sched is not None and (not sched or any(e < 0 for e in sched)): return False,None
    if not pos(ratio) or ratio < 1: return False,None  # below 1 the lower groups would train faster than the head
    if isinstance(lrs, list) and (not lrs or not all(valid_lr(v) for v in lrs)): return False,None
    if not isinstance(lrs, list) and not valid_lr(lrs): return False,None
    if use_gu:
        s = sched if sched is not None else default_schedule(n, n_epoch)
        if any(not -n <= k < n for k in s.values()): return False,None
        stages = {0: 0, **{e: k % n for e,k in sorted(s.items())}}  # a fresh learner is unfrozen before the first entry
    else: stages = {0: 0}
    if isinstance(lrs, list) and len(lrs) != len(stages): return False,None
    return True,stages

def shape(n, k, lr, ratio):
    "Each group's LR over the top group's in a stage whose first `k` groups are frozen, and the top group's LR (fit at 1e-2)"
    if isinstance(lr, slice):
        if lr.start is None: lrs = [lr.stop/10]*(n-1) + [lr.stop]  # fastai's `slice(high)`
        else: lrs = [lr.start*(lr.stop/lr.start)**(i/(n-1)) for i in range(n)]  # fastai's `even_mults(low, high, n)`
        return np.array(lrs)/lr.stop,lr.stop
    top = 1e-2 if lr is None else lr
    return (np.ones(n) if k >= n-1 else float(ratio)**-np.arange(n-1, -1, -1.)),top  # a head-only stage: every group at its LR

def build(sched, use_gu, lrs, ratio, restart, keep_state):
    cbs = [DiscriminativeLR(lrs, ratio=ratio, restart=restart)]
    return ([GradualUnfreeze(sched, keep_state=keep_state)] if use_gu else []) + cbs

@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(2, 5), n_epoch=st.integers(1, 4), sched=schedules, use_gu=st.booleans(), lrs=lrs_arg,
       ratio=st.one_of(st.floats(0.5, 4.), st.floats(0.5, 4.), st.floats(0.5, 4.), st.sampled_from([0., -2.6, float('nan')])), restart=st.booleans(), keep_state=st.booleans())
def test_accepted_and_trained_as_documented_or_refused_before_any_change(n, n_epoch, sched, use_gu, lrs, ratio, restart, keep_state):
    ok,stages = oracle(n, sched, use_gu, lrs, ratio, n_epoch)
    event('accepted and trained' if ok else 'refused')
    learn = groups_learner(n_groups=n, n_train=32)
    w0 = [p.detach().clone() for p in learn.model.parameters()]
    probe = GroupProbe()
    refused = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            learn.fit_one_cycle(n_epoch, 1e-2, cbs=build(sched, use_gu, lrs, ratio, restart, keep_state)+[probe])
    except ValueError as e: refused = e
    assert (refused is None) == ok, f'oracle says valid={ok}, package raised {refused!r}'
    if refused is not None:
        assert all(torch.equal(a, b) for a,b in zip(w0, learn.model.parameters())), 'weights changed before the error'
        learn.fit(1, 1e-3)  # the learner is usable
        assert not all(torch.equal(a, b) for a,b in zip(w0, learn.model.parameters()))
        return
    starts = sorted(stages)
    for epoch,trainable in zip(probe.epochs, probe.trainable):
        idx = stages[max(s for s in starts if s <= epoch)]
        assert trainable == [g >= idx for g in range(n)], (epoch, trainable, stages)
    # every batch's LRs: the stage's shape times its top LR, on the fit's own one-cycle schedule (restart: the shape only)
    lrs_seen,per_stage = np.array(probe.lrs),lrs if isinstance(lrs, list) else [lrs]*len(starts)
    base = GroupProbe()
    if not restart: groups_learner(n_groups=n, n_train=32).fit_one_cycle(n_epoch, 1e-2, cbs=base)
    for b,epoch in enumerate(probe.epochs):
        i = max(j for j,s in enumerate(starts) if s <= epoch)
        sh,top = shape(n, stages[starts[i]], per_stage[i], ratio)
        np.testing.assert_allclose(lrs_seen[b]/lrs_seen[b][-1], sh, rtol=1e-6)
        if not restart: np.testing.assert_allclose(lrs_seen[b][-1], base.lrs[b][-1]/1e-2*top, rtol=1e-6)
