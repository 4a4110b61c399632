"""Quality: test accuracy of fine-tuning methods on the offline transfer tasks, each method at the LR its validation data picks.

Tasks: `digits` (the demo: a CNN pretrained on digits 0-4, transferred to 5-9 from 5 labels per class) and
`text` (all-MiniLM-L6-v2 from its wheel, word polarity from VADER's human ratings; needs the dev extras).
Methods, all with the same epochs: uniform-LR fine-tuning of every layer, fastai's `fine_tune`, the hand-written
fastbook sequence (four `fit_one_cycle` calls, stage LRs lr x [1, 1/2, 1/4, 1/20], slices top/2.6**4..top),
the same in one call with `restart=True` and with `restart=False`, ULMFiT's defaults in one call, and four stages of a
quarter of the fit each: fixed, and ending early when the validation loss stops improving (`patience=1`), with and
without `restore_best`.

What `lr` means differs between methods (fine_tune's base LR, a stage's top LR, the one LR of every group), so
no single LR is fair to all of them. Each method runs at every LR of the task's grid; the LR with the best mean
validation accuracy over the seeds (validation loss breaks ties) is the method's, and its test accuracy, on data
that chose nothing, is reported. The full grid of test accuracies is printed too.

  python benchmarks/transfer.py                 # both tasks, full size (about 25 minutes on 2 CPU cores)
  python benchmarks/transfer.py --tasks digits  # about 8 minutes
  python benchmarks/transfer.py --quick         # the smoke run of the test suite
"""
import argparse, contextlib, io, sys, time
from pathlib import Path
import numpy as np
import torch
sys.path.insert(0, str(Path(__file__).parent))
from _report import report
from fastai_disclr.all import GradualUnfreeze, DiscriminativeLR
from fastai_disclr_examples.digits import pretrain_digits, transfer

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
        # as written by hand: a float for the head-only stage (every group's LR, as in fastai), then slices
        lrs = [top if i == 0 else slice(top/2.6**4, top) for i,top in enumerate(stage_lrs(lr))]
        learn.fit_one_cycle(epochs, cbs=[GradualUnfreeze(dict(zip(starts, [-1, -2, -3, 0]))), DiscriminativeLR(lrs, restart=restart)])
    return _fit

def stages(**kw):
    "Four stages of a quarter of the fit each (head; -2; -3; all), the ULMFiT spread; fixed, or ending early on a plateau (`kw`)"
    def _fit(learn, epochs, lr):
        e = epochs//4
        learn.fit_one_cycle(epochs, lr, cbs=[GradualUnfreeze({0: -1, e: -2, 2*e: -3, 3*e: 0}, **kw), DiscriminativeLR(ratio=2.6)])
    return _fit

METHODS = {
    'uniform LR, all layers':        lambda learn,epochs,lr: learn.fit_one_cycle(epochs, lr),
    'fine_tune':                     lambda learn,epochs,lr: learn.fine_tune(epochs-1, lr),
    'fastbook sequence, by hand':    fastbook_by_hand,
    'one call, restart=True':        one_call(True),
    'one call, restart=False':       one_call(False),
    'one call, ULMFiT defaults':     lambda learn,epochs,lr: learn.fit_one_cycle(epochs, lr, cbs=[GradualUnfreeze(), DiscriminativeLR(ratio=2.6)]),
    'stages, fixed':                 stages(),
    'stages, patience=1':            stages(patience=1),
    'stages, patience=1, restore':   stages(patience=1, restore_best=True),
}
PLATEAU = {'stages, patience=1': 'stages, fixed', 'stages, patience=1, restore': 'stages, fixed'}  # compared with

def digits_task(quick):
    "12 epochs from 5 labels per class; the images not trained on are split into 200 for validation and the rest for test"
    pre = pretrain_digits(epochs=1 if quick else 10)
    def run(fit, seed, epochs, lr):
        with contextlib.redirect_stdout(io.StringIO()):  # the report is the tables, not each fit's own lines
            r = transfer(fit, pre['body'], seed=seed, epochs=epochs, lr=lr)
        return r['valid'],r['valid_loss'],r['test']
    return dict(epochs=4 if quick else 12, lrs=[1e-2, 3e-2] if quick else [3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.], seeds=5, valid=200),run

def text_task(quick):
    "4 epochs from 200 labelled words; 200 other words for validation, 800 more for test"
    from fastai_disclr_examples.text_task import vader_polarity, polarity_learner
    data = vader_polarity()
    def run(fit, seed, epochs, lr):
        learn,tst = polarity_learner(seed, n_test=200 if quick else 800, n_valid=200, data=data)
        with contextlib.redirect_stdout(io.StringIO()): fit(learn, epochs, lr)
        v_loss,v_acc = learn.validate()
        preds,targs = learn.get_preds(dl=tst)
        return float(v_acc),float(v_loss),float((preds.argmax(1) == targs).float().mean())
    return dict(epochs=4, lrs=[1e-3, 1e-2] if quick else [3e-5, 1e-4, 1e-3, 1e-2], seeds=3, valid=200),run

TASKS = {'digits': digits_task, 'text': text_task}
BASELINES = ['uniform LR, all layers', 'fine_tune']

def select(res):
    "The LR with the best mean validation accuracy over the seeds, then the lowest mean validation loss"
    return max(res, key=lambda lr: (res[lr][:, 0].mean().round(6), -res[lr][:, 1].mean()))

def paired(res, m, b) -> str:
    "Test accuracy of method `m` minus `b`, each at its own picked LR, seed by seed: mean (standard error; per seed)"
    d = res[m][select(res[m])][:, 2] - res[b][select(res[b])][:, 2]
    se = d.std(ddof=1)/np.sqrt(len(d)) if len(d) > 1 else float('nan')
    return f"{d.mean():+.3f} (standard error {se:.3f}; per seed {' '.join(f'{x:+.3f}' for x in d)})"

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--tasks', nargs='+', default=list(TASKS), choices=list(TASKS))
    p.add_argument('--seeds', type=int, default=None, help='seeds per method and LR (default: 5 for digits, 3 for text)')
    p.add_argument('--methods', nargs='+', default=list(METHODS), choices=list(METHODS))
    p.add_argument('--quick', action='store_true', help='one seed, two LRs, short runs, digits only unless --tasks says otherwise: a smoke run')
    p.add_argument('--epochs', type=int, default=None, help="epochs of every method (default: the task's, 12 for digits, 4 for text)")
    p.add_argument('--lrs', type=float, nargs='+', default=None, help="the LR grid (default: the task's)")
    p.add_argument('--out', default=None, help='also write the printed report to this file, with the command and machine (the README quotes benchmarks/results/)')
    args = p.parse_args(argv)
    with report(args.out, markdown=True): return _run(args, argv)

def _run(args, argv=None):
    tasks = args.tasks if not args.quick or argv and '--tasks' in argv else ['digits']
    out = {}
    for name in tasks:
        t0 = time.time()
        task,run = TASKS[name](args.quick)
        if args.epochs: task['epochs'] = args.epochs
        if args.lrs: task['lrs'] = args.lrs
        n_seeds = 1 if args.quick else args.seeds or task['seeds']
        # res[method][lr]: (seeds, 3) array of validation accuracy, validation loss, test accuracy
        res = {m: {lr: np.array([run(METHODS[m], s, task['epochs'], lr) for s in range(n_seeds)]) for lr in task['lrs']} for m in args.methods}
        out[name] = res
        print(f"\n{name}: {n_seeds} seed(s) per method and LR, {task['epochs']} epochs, LR grid {task['lrs']} ({time.time()-t0:.0f}s)")
        print(f"\nEach method at the LR its validation accuracy picks ({task['valid']} held-out examples); test accuracy")
        print(f"| {'method':<30} | LR     | valid | mean  | std   | min   | max   |\n|{'-'*32}|--------|-------|-------|-------|-------|-------|")
        for m,r in res.items():
            lr = select(r); a = r[lr][:, 2]
            print(f"| {m:<30} | {lr:.0e} | {r[lr][:, 0].mean():.3f} | {a.mean():.3f} | {a.std():.3f} | {a.min():.3f} | {a.max():.3f} |")
        ones = [m for m in res if m.startswith('one call')]  # the one-call forms of the fastbook sequence and ULMFiT's defaults
        if ones and any(b in res for b in BASELINES):
            # the seed fixes the labelled sample, the held-out split and the head's init: compare methods seed by seed
            best = max(ones, key=lambda m: res[m][select(res[m])][:, 0].mean())
            print(f"\nOne call, the variant with the best validation accuracy ({best}), minus each baseline: paired by seed, test accuracy")
            for b in [b for b in BASELINES if b in res]:
                print(f"  - {b:<24} {paired(res, best, b)}")
        pairs = [(m, b) for m in PLATEAU if m in res for b in [PLATEAU[m]] + BASELINES if b in res]
        if pairs:
            print(f"\nStages that end when the validation loss stops improving, minus the same stages fixed and each baseline, each at its own picked LR: paired by seed, test accuracy")
            for m,b in pairs:
                print(f"  - {m} minus {b}: {paired(res, m, b)}")
        print(f"\nMean test accuracy at every LR of the grid")
        print(f"| {'method':<30} | " + ' | '.join(f'{lr:.0e}' for lr in task['lrs']) + ' |\n|' + '-'*32 + '|' + '-------|'*len(task['lrs']))
        for m,r in res.items(): print(f"| {m:<30} | " + ' | '.join(f'{r[lr][:, 2].mean():.3f}' for lr in task['lrs']) + ' |')
    return out

if __name__ == '__main__': main()
