"""One rank of a 2-process CPU (gloo) DDP fit through fastai's `distrib_ctx`; launched by test_ddp.py with torch.distributed.run.

argv: mode ('disclr': GradualUnfreeze + DiscriminativeLR; 'patience': the same with stages that end when the validation loss
stops improving; 'find': LRs from one range test a fit, spread by the gradients; 'naive': a bare
freeze_to-on-an-epoch-schedule callback), out folder.
Saves this rank's final weights and each group's weights at the start of every epoch.
"""
import sys, torch
from fastai.basics import Callback
from fastai.distributed import rank_distrib
import fastai.distributed
from fastai_disclr.all import *
from fastai_disclr.test_utils import groups_learner, GroupProbe, group_weights

def _broadcast_cpu(self, t, rank):
    "fastai's `DistributedDL._broadcast` moves the index tensor to CUDA for nccl; with gloo on CPU it stays on the CPU"
    t = torch.LongTensor(t)
    torch.distributed.broadcast(t, rank)
    return t.tolist()
fastai.distributed.DistributedDL._broadcast = _broadcast_cpu

SCHEDULE = {0: -1, 1: -2, 2: 0}
# with patience=1 and a min_delta no epoch beats, each stage ends after its second epoch: at 2 and 4 instead of 3 and 6
PATIENT = dict(patience=1, min_delta=1e9, restore_best=True)

class NaiveUnfreeze(Callback):
    "freeze_to on an epoch schedule, nothing else: what a user would write by hand"
    order = 55
    def before_train(self):
        if self.epoch in SCHEDULE: self.learn.freeze_to(SCHEDULE[self.epoch])


mode,out = sys.argv[1],sys.argv[2]
learn = groups_learner(n_groups=4, n_train=256, bs=16, seed=0)
learn.freeze()  # as `vision_learner` leaves a model: DDP wraps it with only the head trainable
snaps = GroupProbe(weights=True)
gu = GradualUnfreeze({0: -1, 3: -2, 6: 0}) if mode == 'patience' else GradualUnfreeze(SCHEDULE)
tp = [ThawOnPlateau(**PATIENT)] if mode == 'patience' else []
# 'find': one LR range test a fit, on each rank's own batches; every rank must take rank 0's pick
dlr = DiscriminativeLR(['find']*3, ratio='grad', finder=LRRangeTest(num_it=12)) if mode == 'find' else DiscriminativeLR(1e-2)
cbs = [gu, dlr] + tp if mode in ('disclr', 'patience', 'find') else [NaiveUnfreeze()]
with learn.distrib_ctx(sync_bn=False, cpu=True):  # accelerate runs DDP on CPU processes only with cpu=True
    learn.fit_one_cycle(8 if mode == 'patience' else 4, 1e-2, cbs=cbs+[snaps])
    world = torch.distributed.get_world_size()
torch.save(dict(world=world, final=group_weights(learn), snaps=snaps.start, stage_log=gu.stage_log, plateau_log=tp[0].log if tp else [],
                picks=[float(r['lr']) for r in dlr.found], lrs=torch.as_tensor(dlr.batch_lrs)),
           f'{out}/{mode}_rank{rank_distrib()}.pt')
