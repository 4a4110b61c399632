"Mixed precision and torch.compile across stage changes: long-ish runs that would clutter the notebooks."
import shutil
import pytest, torch
from fastai.callback.fp16 import MixedPrecision, AMPMode
from fastai_disclr.all import *
from fastai_disclr.test_utils import groups_learner, GroupProbe, group_weights

SCHEDULE = {0: -1, 1: -2, 2: -3, 3: 0}

class CPUMixedPrecision(MixedPrecision):
    "fastai's `MixedPrecision` with CPU autocast and a CPU `GradScaler` (fastai hard-codes 'cuda', which is a no-op on a CPU)"
    def before_fit(self):
        super().before_fit()
        dtype = torch.bfloat16 if self.amp_mode == AMPMode.BF16 else torch.float16
        self.autocast,self.learn.scaler = torch.autocast('cpu', dtype=dtype),torch.amp.GradScaler('cpu', **self.kwargs)

def fp16_run(cbs, init_scale=2.**40):
    "5-group learner under fp16 with an initial loss scale far too high, so the scaler has to calibrate"
    learn = groups_learner(n_groups=5, n_train=256)
    learn.add_cb(CPUMixedPrecision(init_scale=init_scale, growth_interval=8))
    probe = GroupProbe()
    learn.fit_one_cycle(4, 1e-2, cbs=cbs+[probe])
    return probe

@pytest.mark.parametrize('gu', [dict(schedule=SCHEDULE),
    # stages that end when the validation loss stops improving (min_delta: at once), going back to each stage's best weights
    dict(schedule={0: -1, 2: -2, 3: 0}, plateau=dict(patience=1, min_delta=1e9, restore_best=True))], ids=['fixed', 'plateau'])
def test_fp16_stage_changes_do_not_restart_the_loss_scaler(gu):
    plain = fp16_run([])
    tp = [ThawOnPlateau(**gu['plateau'])] if 'plateau' in gu else []
    staged = fp16_run([g := GradualUnfreeze(gu['schedule']), DiscriminativeLR(1e-2)] + tp)
    assert len(g.stage_log) >= 3
    assert plain.skipped > 0, 'the test needs a scaler that calibrates'
    assert staged.skipped <= plain.skipped, (staged.skipped, plain.skipped)
    assert len({i for i,_ in staged.scales}) == 1  # one scaler object all through the fit
    n_iter = len(staged.scales)//4
    assert max(s for _,s in staged.scales[n_iter:]) < 2.**40  # never back at the initial scale after a stage change

@pytest.mark.parametrize('amp', ['fp16', 'bf16'])
def test_mixed_precision_range_test_leaves_no_trace(amp):
    """An LR range test inside an fp16 fit: its steps go through the loss scaler (which skips the diverging ones), then the scaler,
    the weights and everything else are put back, so the fit trains as the same fit given the picked LR; the same in bf16"""
    def fit(lrs):
        learn = groups_learner(n_groups=5, n_train=256)
        learn.add_cb(CPUMixedPrecision(init_scale=2.**16, growth_interval=8) if amp == 'fp16' else CPUMixedPrecision(amp_mode='bf16'))
        probe, dlr = GroupProbe(), DiscriminativeLR(lrs, finder=LRRangeTest(num_it=40))
        learn.fit_one_cycle(4, 1e-2, cbs=[GradualUnfreeze({0: -1, 2: 0}), dlr, probe])
        return learn, probe, dlr
    learn, probe, dlr = fit(['find', 'find'])
    learn2, probe2, _ = fit([dlr.found[0]['lr']]*2)
    assert len(dlr.found) == 1 and dlr.found[0]['batches'] > 6  # one range test a fit
    assert [s for _, s in probe.scales] == [s for _, s in probe2.scales]  # the scaler's scale at every batch of the fit
    assert probe.skipped == probe2.skipped
    assert all(torch.equal(a, b) for a, b in zip(group_weights(learn), group_weights(learn2)))

def test_bf16_trains_every_group_after_its_thaw():
    learn = groups_learner(n_groups=4)
    learn.add_cb(CPUMixedPrecision(amp_mode='bf16'))
    w0 = [p.detach().clone() for p in learn.model.parameters()]
    dlr = DiscriminativeLR([1e-2, 5e-3, 2e-3, 1e-3], restart=True)
    learn.fit_one_cycle(4, cbs=[GradualUnfreeze({0: -1, 1: -2, 2: -3, 3: 0}), dlr])
    assert all(not torch.equal(a, b) for a,b in zip(w0, learn.model.parameters()))
    assert (dlr.batch_lrs > 0).all()

def compile_run(compiled):
    learn,snaps = groups_learner(n_groups=4),GroupProbe(weights=True)
    if compiled: learn.model.compile()
    learn.fit_one_cycle(3, 1e-2, cbs=[GradualUnfreeze({0: -1, 1: -2, 2: 0}), DiscriminativeLR(), snaps])
    return group_weights(learn),snaps.start

def test_torch_compile_picks_up_thawed_groups():
    "requires_grad changes between stages must not leave a stale compiled graph: same result as eager"
    if not (shutil.which('cc') or shutil.which('gcc')): pytest.skip('torch.compile on CPU needs a C compiler, and none is on the PATH')
    try: compiled,snaps = compile_run(True)
    except Exception as e:
        if 'BackendCompilerFailed' in type(e).__name__ or 'InductorError' in type(e).__name__:
            pytest.skip(f"this platform's compiler for torch.compile failed: {type(e).__name__}: {str(e)[:200]}")
        raise
    eager,_ = compile_run(False)
    for g,e in {0: 2, 1: 2, 2: 1, 3: 0}.items():
        assert not torch.equal(snaps[e][g], compiled[g]), f'group {g} did not train after its thaw at epoch {e}'
        assert torch.allclose(compiled[g], eager[g], atol=1e-5), (g, (compiled[g]-eager[g]).abs().max())
