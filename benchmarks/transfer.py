"""Quality: final test accuracy of fine-tuning methods on the offline transfer tasks, over several seeds.

Tasks: `digits` (the demo: a CNN pretrained on digits 0-4, transferred to 5-9 from 5 labels per class) and
`text` (all-MiniLM-L6-v2 from its wheel, word polarity from VADER's human ratings; needs the dev extras).
Methods, all with the same epochs: uniform-LR fine-tuning of every layer, fastai's `fine_tune`, the hand-written
fastbook sequence (four `fit_one_cycle` calls, stage LRs lr x [1, 1/2, 1/4, 1/20], slices top/2.6**4..top),
the same in one call with `restart=True` and with `restart=False`, and ULMFiT's defaults in one call.

  python benchmarks/transfer.py                 # both tasks, full size (about 5 minutes on 2 CPU cores)
  python benchmarks/transfer.py --quick         # the smoke run of the test suite
"""
import argparse, time
import numpy as np
from fastai_disclr.all import GradualUnfreeze, DiscriminativeLR
from fastai_disclr.demo import pretrain_digits, transfer

STAGE_MULTS = [1, 1/2, 1/4, 1/20]  # fastbook's ULMFiT stages: 2e-2, 1e-2, 5e-3, 1e-3

def split_epochs(epochs): return [1, 1, 1, epochs-3]  # head, -2, -3: one epoch each; the rest unfrozen

def stage_lrs(lr): return [lr*m for m in STAGE_MULTS]

def fastbook_by_hand(learn, epochs, lr):
    for freeze,n,top,first in zip([-1, -2, -3, 0], split_epochs(epochs), stage_lrs(lr), [True, False, False, False]):
        learn.freeze_to(freeze)
        learn.fit_one_cycle(n, top if first else slice(top/2.6**4, top))

def one_call(restart):
    def _fit(learn, epochs, lr):
        starts = np.cumsum([0] + split_epochs(epochs)[:-1]).tolist()
        # stage 1 by hand is a float LR, the same for every group: slice(top, top) here
        lrs = [slice(top, top) if i == 0 else slice(top/2.6**4, top) for i,top in enumerate(stage_lrs(lr))]
        learn.fit_one_cycle(epochs, cbs=[GradualUnfreeze(dict(zip(starts, [-1, -2, -3, 0]))), DiscriminativeLR(lrs, restart=restart)])
    return _fit

METHODS = {
    'uniform LR, all layers':        lambda learn,epochs,lr,task: learn.fit_one_cycle(epochs, task['uniform_lr']),
    'fine_tune':                     lambda learn,epochs,lr,task: learn.fine_tune(epochs-1, lr),
    'fastbook sequence, by hand':    lambda learn,epochs,lr,task: fastbook_by_hand(learn, epochs, lr),
    'one call, restart=True':        lambda learn,epochs,lr,task: one_call(True)(learn, epochs, lr),
    'one call, restart=False':       lambda learn,epochs,lr,task: one_call(False)(learn, epochs, lr),
    'one call, ULMFiT defaults':     lambda learn,epochs,lr,task: learn.fit_one_cycle(epochs, lr, cbs=[GradualUnfreeze(), DiscriminativeLR(ratio=2.6)]),
}

def digits_task(quick):
    pre = pretrain_digits(epochs=1 if quick else 10)
    task = dict(epochs=4 if quick else 12, lr=1e-2, uniform_lr=1e-2)
    def run(fit, seed): return transfer(lambda learn,e,lr: fit(learn, e, lr, task), pre['body'], seed=seed, epochs=task['epochs'], lr=task['lr'], pretrained=True)[0]
    return task,run

def text_task(quick):
    from fastai_disclr.text_task import vader_polarity, polarity_learner
    data = vader_polarity()
    task = dict(epochs=4, lr=1e-2, uniform_lr=1e-4)
    def run(fit, seed):
        learn,tst = polarity_learner(seed, n_test=200 if quick else 800, data=data)
        fit(learn, task['epochs'], task['lr'], task)
        preds,targs = learn.get_preds(dl=tst)
        return float((preds.argmax(1) == targs).float().mean())
    return task,run

TASKS = {'digits': digits_task, 'text': text_task}

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--tasks', nargs='+', default=list(TASKS), choices=list(TASKS))
    p.add_argument('--seeds', type=int, default=None, help='seeds per method (default: 5 for digits, 3 for text)')
    p.add_argument('--quick', action='store_true', help='one seed, short runs, digits only unless --tasks says otherwise: a smoke run')
    args = p.parse_args(argv)
    tasks = args.tasks if not args.quick or argv and '--tasks' in argv else ['digits']
    out = {}
    for name in tasks:
        t0 = time.time()
        task,run = TASKS[name](args.quick)
        n_seeds = 1 if args.quick else args.seeds or (5 if name == 'digits' else 3)
        res = {m: np.array([run(fit, s) for s in range(n_seeds)]) for m,fit in METHODS.items()}
        out[name] = res
        print(f"\n{name}: test accuracy over {n_seeds} seed(s), {task['epochs']} epochs, top LR {task['lr']} ({time.time()-t0:.0f}s)")
        print(f"| {'method':<30} | mean  | std   | min   | max   |\n|{'-'*32}|-------|-------|-------|-------|")
        for m,a in res.items(): print(f"| {m:<30} | {a.mean():.3f} | {a.std():.3f} | {a.min():.3f} | {a.max():.3f} |")
    return out

if __name__ == '__main__': main()
