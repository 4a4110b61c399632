"""Quality: which fine-tuning method gives the best fine-tune, in and out of distribution, and at what cost in choosing its LRs.

Tasks (offline, from `fastai_disclr_examples`):
  digits  a small CNN pretrained on digits 0-4, transferred to 5-9 from 5 labels per class (12 epochs, 5 seeds); tested on
          the other images of 5-9 (in distribution) and on the same images under four corruptions, shift, noise, rotation
          and blur (out of distribution, as CIFAR-10-C tests CIFAR-10)
  text    all-MiniLM-L6-v2 on VADER's rated words, 200 to train on (8 epochs, 3 seeds); tested on 800 other words (in
          distribution) and on the same words each in a neutral sentence (out of distribution: sentences, not the single
          words trained on, rated by the same people)
Methods that take an LR run at every LR of the task's grid, and each seed is reported at the LR its own validation
accuracy picks (as a user who ran the grid once would pick; the seeds stay independent); methods that choose their own
LRs (`DiscriminativeLR('find')`: one LR range test a fit; fastai's `lr_find` + `fit_one_cycle`), and the baselines at fastai's
default LRs (`fine_tune()`, `fit_one_cycle`), run once, with no grid. The compute each spent
choosing: the grid's runs (every run of a seed's grid counts, in training batches), or the range tests' batches; and
the total with the training. Each self-choosing method is compared seed by seed with the best grid-tuned baseline (the
grid method with the best mean validation accuracy at its picks) and with one LR for all layers, in and out of
distribution.

  python benchmarks/transfer.py --tasks digits --out benchmarks/results/transfer.md        # about 10 minutes
  python benchmarks/transfer.py --tasks text --out benchmarks/results/transfer_text.md     # about 2 hours on 2 cores
  python benchmarks/transfer.py --quick                                                   # the smoke run of the test suite
"""
import argparse, contextlib, io, json, sys, time
from pathlib import Path
import numpy as np
import torch
sys.path.insert(0, str(Path(__file__).parent))
from _report import report
from choosing import lr_find_one_cycle  # what a fastai user types to choose an LR, as choosing.py runs it
from fastai_disclr.all import GradualUnfreeze, ThawOnPlateau, DiscriminativeLR, LRRangeTest

STAGE_MULTS = [1, 1/2, 1/4, 1/20]  # fastbook's ULMFiT stages: 2e-2, 1e-2, 5e-3, 1e-3

def quarters(epochs): e = epochs//4; return {0: -1, e: -2, 2*e: -3, 3*e: 0}
def lpft(epochs): return {0: -1, epochs//4: 0}  # LP-FT: the head alone for a quarter of the fit, then everything at one LR

def fastbook_by_hand(learn, epochs, lr):
    for freeze,n,top,first in zip([-1, -2, -3, 0], [1, 1, 1, epochs-3], [lr*m for m in STAGE_MULTS], [True, False, False, False]):
        learn.freeze_to(freeze)
        learn.fit_one_cycle(n, top if first else slice(top/2.6**4, top))

def one_call(sched=None, lrs=None, ratio=2.6, patience=None):
    """fit_one_cycle with GradualUnfreeze(sched) (none if 'none'), ThawOnPlateau(patience) if given, and DiscriminativeLR(lrs,
    ratio); `lrs=None`: the method's LR"""
    def _fit(learn, epochs, lr):
        cbs = [] if sched == 'none' else [GradualUnfreeze(sched(epochs) if callable(sched) else sched)]
        if patience is not None: cbs.append(ThawOnPlateau(patience=patience))
        dlr = DiscriminativeLR(lrs, ratio=ratio, finder=LRRangeTest())
        learn.fit_one_cycle(epochs, lr if lrs is None else None, cbs=cbs + [dlr])
        return dlr
    return _fit

GRID = {  # methods that take an LR
    'uniform LR, all layers':       lambda learn,epochs,lr: learn.fit_one_cycle(epochs, lr),
    'fine_tune':                    lambda learn,epochs,lr: learn.fine_tune(epochs-1, lr),
    'fastbook sequence, by hand':   fastbook_by_hand,
    'stages, ULMFiT spread':        one_call(quarters),
    'stages, patience=1':           one_call(quarters, patience=1),
    'LP-FT':                        one_call(lpft, ratio=1),
    'gradient spread, all layers':  one_call('none', ratio='grad'),
    'stages, gradient spread':      one_call(quarters, ratio='grad'),
}
DEFAULTS = {  # what a fastai user runs without a grid: fastai's default LRs, or `lr_find`'s
    'fine_tune(), fastai defaults':             lambda learn,epochs,lr: learn.fine_tune(epochs-1),
    'fit_one_cycle, fastai default LR':         lambda learn,epochs,lr: learn.fit_one_cycle(epochs),
    'lr_find + fit_one_cycle':                  lambda learn,epochs,lr: lr_find_one_cycle(learn, epochs),
}
FOUND = {  # methods that choose their own LRs: one LR range test a fit
    'one call, found LRs':                      one_call(None, 'find'),
    'one call, found LRs, no spread':           one_call(None, 'find', ratio=1),
    'one call, found LRs, gradient spread':     one_call(None, 'find', ratio='grad'),
    'LP-FT, found LRs':                         one_call(lpft, 'find', ratio=1),
    'lr_find, all layers':                      one_call('none', 'find', ratio=1),
    'found LR, gradient spread, all layers':    one_call('none', 'find', ratio='grad'),
}
FOUND = DEFAULTS | FOUND  # run once, no grid
AT_DEFAULT = [m for m in DEFAULTS if m != 'lr_find + fit_one_cycle']  # fastai's default LRs: nothing chosen
METHODS = GRID | FOUND

def digits_task(quick):
    "12 epochs from 5 labels per class; of the images not trained on, 200 validate and the rest test, as they are and corrupted"
    from fastai_disclr_examples.digits import pretrain_digits, transfer
    pre = pretrain_digits(epochs=1 if quick else 10)
    def run(fit, seed, epochs, lr):
        with contextlib.redirect_stdout(io.StringIO()):  # the report is the tables, not each fit's own lines
            r = transfer(fit, pre['body'], seed=seed, epochs=epochs, lr=lr)
        return r['valid'],r['valid_loss'],r['test'],r['ood'],len(r['learn'].dls.train),r['out']
    return dict(epochs=4 if quick else 12, lrs=[1e-2, 3e-2] if quick else [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.], seeds=5,
                valid=200, ood='the test images under four corruptions (shift, noise, rotation, blur)'),run

def text_task(quick):
    "8 epochs from 200 labelled words; 200 other words validate, 800 more test, alone and in sentences"
    import transformers; transformers.utils.logging.disable_progress_bar()
    from fastai_disclr_examples.text_task import vader_polarity, polarity_learner, sentences_dl
    data = vader_polarity()
    n_test = 200 if quick else 800
    def acc(learn, dl):
        preds,targs = learn.get_preds(dl=dl)
        return float((preds.argmax(1) == targs).float().mean())
    def run(fit, seed, epochs, lr):
        learn,tst = polarity_learner(seed, n_test=n_test, n_valid=200, data=data)
        with contextlib.redirect_stdout(io.StringIO()): out = fit(learn, epochs, lr)
        v_loss,v_acc = learn.validate()
        return (float(v_acc), float(v_loss), acc(learn, tst), acc(learn, sentences_dl(seed, n_test=n_test, n_valid=200)),
                len(learn.dls.train), out)
    return dict(epochs=4 if quick else 8, lrs=[1e-4, 1e-3] if quick else [3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2], seeds=3,
                valid=200, ood='the test words, each in a neutral sentence'),run

TASKS = {'digits': digits_task, 'text': text_task}

def select(res) -> list:
    """Each seed's LR: the one with that seed's best validation accuracy, then its lowest validation loss, as a user who
    ran the grid once would pick (so each seed's choice costs one run of the grid, and the seeds stay independent)"""
    lrs = list(res)
    return [max(lrs, key=lambda lr: (round(res[lr][s, 0], 6), -res[lr][s, 1])) for s in range(len(res[lrs[0]]))]

def at_pick(res, m):
    "(seeds, 6) results of method `m`, each seed at its own picked LR (or its one run, for the methods that choose their own)"
    if m not in GRID: return res[m][None]
    return np.stack([res[m][lr][s] for s,lr in enumerate(select(res[m]))])

def picks_str(res, m, grid) -> str:
    "The LRs the seeds picked, `*` where one is at an end of the grid (the grid may be too narrow there)"
    ps = sorted(set(select(res[m])))
    s = f"{ps[0]:.0e}" if len(ps) == 1 else f"{ps[0]:.0e}-{ps[-1]:.0e}"
    return s + ('*' if ps[0] == min(grid) or ps[-1] == max(grid) else '')

def se(x): return x.std(ddof=1)/np.sqrt(len(x)) if len(x) > 1 else float('nan')

def paired(res, m, b, col) -> str:
    "Accuracy of method `m` minus `b` (column `col`: 2 in distribution, 3 out), each at its picked LR, seed by seed"
    d = at_pick(res, m)[:, col] - at_pick(res, b)[:, col]
    return f"{d.mean():+.3f} ({se(d):.3f})"

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--tasks', nargs='+', default=list(TASKS), choices=list(TASKS))
    p.add_argument('--seeds', type=int, default=None, help='seeds per method and LR (default: 5 for digits, 3 for text)')
    p.add_argument('--methods', nargs='+', default=list(METHODS), choices=list(METHODS))
    p.add_argument('--quick', action='store_true', help='one seed, two LRs, short runs, digits only unless --tasks says otherwise: a smoke run')
    p.add_argument('--epochs', type=int, default=None, help="epochs of every method (default: the task's, 12 for digits, 8 for text)")
    p.add_argument('--lrs', type=float, nargs='+', default=None, help="the LR grid (default: the task's)")
    p.add_argument('--out', default=None, help='also write the printed report to this file (and the figures to its .json), with the command and machine')
    args = p.parse_args(argv)
    with report(args.out, markdown=True): return _run(args, argv)

def _run(args, argv=None):
    tasks = args.tasks if not args.quick or argv and '--tasks' in argv else ['digits']
    torch.set_num_threads(1)
    out = {}
    for name in tasks:
        t0 = time.time()
        task,run = TASKS[name](args.quick)
        if args.epochs: task['epochs'] = args.epochs
        if args.lrs: task['lrs'] = args.lrs
        n_seeds,E = 1 if args.quick else args.seeds or task['seeds'],task['epochs']
        # res[method][lr]: (seeds, 6): valid accuracy, valid loss, test accuracy, out-of-distribution accuracy, batches an
        # epoch, range-test batches; the self-choosing methods' one run is filed under lr None
        res,picks = {},{}
        for m in args.methods:
            lrs = task['lrs'] if m in GRID else [None]
            res[m] = {}
            for lr in lrs:
                rows = []
                for s in range(n_seeds):
                    v,vl,t,o,n_iter,dlr = run(METHODS[m], s, E, lr)
                    found = dlr.found if isinstance(dlr, DiscriminativeLR) else []
                    if isinstance(dlr, dict): found = [dict(batches=dlr['choose'], lr=x) for x in dlr['picks']]
                    rows.append([v, vl, t, o, n_iter, sum(r['batches'] for r in found)])
                    if found: picks.setdefault(m, []).append([r['lr'] for r in found])
                res[m][lr] = np.array(rows)
        grid = [m for m in res if m in GRID]
        print(f"\n{name}: {n_seeds} seed(s), {E} epochs; LR grid {task['lrs']} for the methods that take an LR ({time.time()-t0:.0f}s)")
        print(f"\nEach method, each seed at the LR its own validation accuracy picks ({task['valid']} held-out items), or at the LRs it finds; "
              f"accuracy in distribution (test) and out of it ({task['ood']}): mean (standard error over seeds). "
              "Compute in training batches: choosing the LRs (every run of a seed's grid, the picked one among them, or the range tests), training, and the total")
        print(f"| {'method':<38} | LR (seeds' picks) | valid | test          | out of distribution | choosing, batches | training, batches | total, batches |")
        print(f"|{'-'*40}|-------------------|-------|---------------|---------------------|-------------------|-------------------|----------------|")
        for m in res:
            r = at_pick(res, m)
            n_iter = r[0, 4]
            lr = picks_str(res, m, task['lrs']) if m in GRID else 'default' if m in AT_DEFAULT else 'found'
            # the grid: every run of it, the picked one among them; a self-choosing method: its range tests, then its fit
            choose = len(task['lrs'])*E*n_iter if m in GRID else r[:, 5].mean()
            total = choose if m in GRID else choose + E*n_iter
            print(f"| {m:<38} | {lr:<17} | {r[:, 0].mean():.3f} | {r[:, 2].mean():.3f} ({se(r[:, 2]):.3f}) | {r[:, 3].mean():.3f} ({se(r[:, 3]):.3f})       "
                  f"| {choose:17.0f} | {E*n_iter:17.0f} | {total:14.0f} |")
        if any(picks_str(res, m, task['lrs']).endswith('*') for m in grid):
            print("\n`*`: a seed picked an LR at an end of the grid")
        if grid and any(m in FOUND for m in res):
            best = max(grid, key=lambda m: at_pick(res, m)[:, 0].mean())
            base = [best] + [b for b in ['uniform LR, all layers', 'fine_tune'] if b in res and b != best]
            print(f"\nEach method that chooses its own LRs minus the baselines, seed by seed (standard error); the best grid-tuned "
                  f"baseline, by validation accuracy, is *{best}*")
            print(f"| {'method':<38} | " + ' | '.join(f"{'minus ' + b + ', test':<44} | {'out of distribution':<20}" for b in base) + ' |')
            print(f"|{'-'*40}|" + '|'.join(f"{'-'*46}|{'-'*22}" for _ in base) + '|')
            for m in [m for m in res if m in FOUND]:
                print(f"| {m:<38} | " + ' | '.join(f"{paired(res, m, b, 2):<44} | {paired(res, m, b, 3):<20}" for b in base) + ' |')
        if picks:
            print("\nThe LRs found (each stage's top LR), seed 0")
            for m,ps in picks.items(): print(f"  - {m}: {', '.join(f'{x:.2g}' for x in ps[0])}")
        print(f"\nTest accuracy (in distribution) of the methods that take an LR, at every LR of the grid (mean over seeds)")
        print(f"| {'method':<38} | " + ' | '.join(f'{lr:.0e}' for lr in task['lrs']) + ' |\n|' + '-'*40 + '|' + '-------|'*len(task['lrs']))
        for m in grid: print(f"| {m:<38} | " + ' | '.join(f'{res[m][lr][:, 2].mean():.3f}' for lr in task['lrs']) + ' |')
        out[name] = dict(epochs=E, lrs=task['lrs'], methods={m: {str(lr): v.tolist() for lr,v in r.items()} for m,r in res.items()},
                         picked={m: (select(res[m]) if m in GRID else None) for m in res}, found=picks)  # per seed
    if args.out: Path(args.out).with_suffix('.json').write_text(json.dumps(out, indent=1))
    return out

if __name__ == '__main__': main()
