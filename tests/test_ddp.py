"DDP on 2 CPU ranks (gloo) through fastai's `distrib_ctx`: a mid-fit thaw keeps the replicas identical."
import subprocess, sys
from pathlib import Path
import pytest, torch

here = Path(__file__).resolve().parent
THAWED_AT = {3: 0, 2: 1, 1: 2, 0: 2}  # group -> epoch it starts training, from ddp_worker.SCHEDULE {0: -1, 1: -2, 2: 0}

def run_ranks(mode, out):
    "Launch ddp_worker.py on 2 ranks with torch.distributed.run; each rank's saved record"
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                        str(here/'ddp_worker.py'), mode, str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    return [torch.load(out/f'{mode}_rank{rank}.pt') for rank in (0, 1)]

@pytest.fixture(scope='module')
def disclr(tmp_path_factory): return run_ranks('disclr', tmp_path_factory.mktemp('ddp'))

def test_two_ranks_ran(disclr):
    assert [r['world'] for r in disclr] == [2, 2]

def test_replicas_end_bit_identical(disclr):
    r0,r1 = disclr
    for g,(g0,g1) in enumerate(zip(r0['final'], r1['final'])): assert torch.equal(g0, g1), f'group {g} differs between ranks'

def test_each_group_moves_after_its_thaw_and_not_before(disclr):
    for r in disclr:
        snaps,final = r['snaps'],r['final']
        for g,e in THAWED_AT.items():
            assert not torch.equal(snaps[e][g], final[g]), f'group {g} did not move after its thaw at epoch {e}'
            for before in range(e): assert torch.equal(snaps[before][g], snaps[0][g]), f'group {g} moved while frozen'

def test_naive_freeze_to_on_a_schedule_drifts(tmp_path):
    "What the callbacks prevent: freeze_to alone leaves the groups thawed mid-fit out of DDP's all-reduce"
    r0,r1 = run_ranks('naive', tmp_path)
    assert not all(torch.equal(g0, g1) for g0,g1 in zip(r0['final'], r1['final']))

def test_stages_decided_by_the_validation_loss_are_the_same_on_every_rank(tmp_path):
    "ThawOnPlateau(patience=..., restore_best=True): each rank changes stage, and restores, at the same epoch (rank 0 decides); the replicas stay identical"
    r0,r1 = run_ranks('patience', tmp_path)
    starts = [[(s['epoch'], s['why']) for s in r['stage_log']] for r in (r0, r1)]
    assert starts[0] == starts[1] == [(0, 'start'), (2, 'plateau'), (4, 'plateau')], starts
    assert [t['restored'] for t in r0['plateau_log']] == [t['restored'] for t in r1['plateau_log']] == [0, 2, 4]
    for g,(g0,g1) in enumerate(zip(r0['final'], r1['final'])): assert torch.equal(g0, g1), f'group {g} differs between ranks'
    for g,e in {3: 0, 2: 2, 1: 4, 0: 4}.items():
        assert not torch.equal(r0['snaps'][e][g], r0['final'][g]), f'group {g} did not move after its thaw at epoch {e}'
        for before in range(e): assert torch.equal(r0['snaps'][before][g], r0['snaps'][0][g]), f'group {g} moved while frozen'

def test_found_lrs_are_rank_0s_on_every_rank(tmp_path):
    "DiscriminativeLR('find', ratio='grad'): each rank runs the range test on its own batches and takes rank 0's pick; the replicas stay identical"
    r0,r1 = run_ranks('find', tmp_path)
    assert len(r0['picks']) == 1 and r0['picks'] == r1['picks'], (r0['picks'], r1['picks'])  # one range test a fit
    assert torch.equal(torch.as_tensor(r0['lrs']), torch.as_tensor(r1['lrs']))  # the gradient spread too: gradients all-reduced
    for g,(g0,g1) in enumerate(zip(r0['final'], r1['final'])): assert torch.equal(g0, g1), f'group {g} differs between ranks'
