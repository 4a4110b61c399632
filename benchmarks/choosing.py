"""Choosing the LRs: the one call given no LR against what a fastai user types today, on tasks of realistic shape.

Baselines a user runs without a grid: `fine_tune()` at fastai's defaults, `fit_one_cycle` at fastai's default LR, and
`lr_find()` (valley) then `fit_one_cycle` at the valley, the reference. The one call: `fit_one_cycle(n, cbs=
[GradualUnfreeze(), DiscriminativeLR('find', ratio=...)])`, which spends one range test (fastai's `lr_find` settings)
a fit. A grid-tuned `fit_one_cycle` (one LR, each seed at its own validation pick) is a reference where it is cheap.
Every method of a seed starts from the same weights, labelled sample, split and head initialisation (paired by seed).

Tasks (offline, from `fastai_disclr_examples`):
  digits_a  a small CNN (4 groups) pretrained on digits 0-4, transferred to 5-9 from 30 labels per class (12 epochs)
  digits_b  the same, pretrained on 5-9 and transferred to 0-4
  timm      timm's resnet10t (6 groups, from its `group_matcher`) pretrained on digits 0-4 at 32x32, transferred to 5-9
            from 30 labels per class (12 epochs)
  text      all-MiniLM-L6-v2 (8 groups) on VADER's rated words, 1,000 to train on (4 epochs, 3 seeds); tested on 800
            other words (in distribution) and on the same words each in a neutral sentence (out of distribution)
The digits tasks test on the other images of their classes (in distribution) and on the same images under four
corruptions (out of distribution). Compute: the training batches, plus the batches spent choosing an LR (`lr_find`'s,
the range test's, or every run of the grid).

The defaults of issue 23 are decided by the rule in `benchmarks/choosing_rule.md`, written before these results;
`--report` applies it to the results of every task.

  python benchmarks/choosing.py --tasks digits_a digits_b timm --json benchmarks/results/choosing_vision.json  # ~30 min
  python benchmarks/choosing.py --tasks text --json benchmarks/results/choosing_text.json                     # ~60 min
  python benchmarks/choosing.py --report benchmarks/results/choosing_*.json --out benchmarks/results/choosing.md
  python benchmarks/choosing.py --quick                                          # the smoke run of the test suite
"""
import argparse, contextlib, io, json, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np
import torch
sys.path.insert(0, str(Path(__file__).parent))
from _report import report
from fastai_disclr.all import GradualUnfreeze, DiscriminativeLR

REF = 'lr_find + fit_one_cycle'

def midpoint_schedule(n:int, epochs:int) -> dict:
    "Candidate (b) of the rule: several groups a thaw, every group thawed by the fit's midpoint"
    k = min(n-1, max(1, epochs//2))
    return {0: -1} | {j: (0 if j == k else -(1 + round(j*(n-1)/k))) for j in range(1, k+1)}

def _lr_find(learn):
    "fastai's `lr_find` (valley), run where a user runs it, and the batches it took"
    with tempfile.TemporaryDirectory() as d:
        path,learn.path = learn.path,Path(d)
        try: sug = learn.lr_find(show_plot=False)
        finally: learn.path = path
    return float(sug.valley),len(learn.recorder.lrs)

def lr_find_one_cycle(learn, epochs):
    lr,n = _lr_find(learn)
    learn.fit_one_cycle(epochs, lr)
    return dict(choose=n, picks=[lr])

def one_call(ratio, midpoint=False):
    "The one call given no LR: `GradualUnfreeze()` (or candidate (b)'s schedule) and `DiscriminativeLR('find', ratio)`"
    def fit(learn, epochs):
        n = len(learn.opt.param_lists) if learn.opt is not None else len(learn.splitter(learn.model))
        gu = GradualUnfreeze(midpoint_schedule(n, epochs) if midpoint else None)
        dlr = DiscriminativeLR('find', ratio=ratio)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # today's default on a short fit warns that groups stay frozen: measured here
            learn.fit_one_cycle(epochs, cbs=[gu, dlr])
        return dict(choose=sum(r['batches'] for r in dlr.found), picks=[r['lr'] for r in dlr.found],
                    flat=[bool(r['flat']) for r in dlr.found])
    return fit

def plain(f):
    def fit(learn, epochs): f(learn, epochs); return dict(choose=0, picks=[])
    return fit

METHODS = {
    'fine_tune()':                      plain(lambda learn,E: learn.fine_tune(E-1)),
    'fit_one_cycle, default LR':        plain(lambda learn,E: learn.fit_one_cycle(E)),
    REF:                                lr_find_one_cycle,
    'one call, ratio=2.6':              one_call(2.6),
    'one call, ratio=1':                one_call(1),
}
MIDPOINT = {  # candidate (b) of D2: run where it differs from today's default (more groups than thaws fit in half the fit)
    'one call, ratio=2.6, thaw by midpoint': one_call(2.6, midpoint=True),
    'one call, ratio=1, thaw by midpoint':   one_call(1, midpoint=True),
}
GRID_NAME = 'fit_one_cycle, grid-tuned LR'

def digits_task(quick, source, target, timm_model=False):
    from fastai_disclr_examples.digits import pretrain_digits, transfer
    if timm_model:
        import timm
        def model(n): return timm.create_model('resnet10t', num_classes=n, in_chans=1)
        pre = pretrain_digits(epochs=1 if quick else 5, classes=source, model=model, size=32, lr=3e-3)
    else: pre = pretrain_digits(epochs=1 if quick else 10, classes=source)
    def run(fit, seed, epochs):
        with contextlib.redirect_stdout(io.StringIO()):
            r = transfer(lambda learn,E,lr: fit(learn, E), pre['body'], seed=seed, epochs=epochs, n_shot=30, classes=target,
                         model=pre['model'], size=pre['size'])
        return dict(valid=r['valid'], valid_loss=r['valid_loss'], test=r['test'], ood=r['ood'],
                    n_iter=len(r['learn'].dls.train), n_groups=len(r['learn'].opt.param_lists), **r['out'])
    grid = [1e-3, 3e-3, 1e-2, 3e-2] if timm_model else [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
    return dict(epochs=4 if quick else 12, seeds=1 if quick else 5, grid=[1e-2] if quick else grid,
                ood='the test images under four corruptions (shift, noise, rotation, blur)'),run

def text_task(quick):
    import transformers; transformers.utils.logging.disable_progress_bar()
    from fastai_disclr_examples.text_task import vader_polarity, polarity_learner, sentences_dl
    data,kw = vader_polarity(),dict(n_train=200 if quick else 1000, n_test=200 if quick else 800, n_valid=200)
    def acc(learn, dl):
        preds,targs = learn.get_preds(dl=dl)
        return float((preds.argmax(1) == targs).float().mean())
    def run(fit, seed, epochs):
        learn,tst = polarity_learner(seed, data=data, **kw)
        with contextlib.redirect_stdout(io.StringIO()): out = fit(learn, epochs)
        v_loss,v_acc = learn.validate()
        return dict(valid=float(v_acc), valid_loss=float(v_loss), test=acc(learn, tst), ood=acc(learn, sentences_dl(seed, **kw)),
                    n_iter=len(learn.dls.train), n_groups=len(learn.opt.param_lists), **out)
    return dict(epochs=2 if quick else 4, seeds=1 if quick else 3, grid=[],
                ood='the test words, each in a neutral sentence'),run

TASKS = {
    'digits_a': lambda q: digits_task(q, (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)),
    'digits_b': lambda q: digits_task(q, (5, 6, 7, 8, 9), (0, 1, 2, 3, 4)),
    'timm':     lambda q: digits_task(q, (0, 1, 2, 3, 4), (5, 6, 7, 8, 9), timm_model=True),
    'text':     text_task,
}

def run_task(name, quick, seeds=None) -> dict:
    "Every method on every seed of task `name`: {method: [per-seed result]}, and the task's settings"
    t0 = time.time()
    task,run = TASKS[name](quick)
    E,S = task['epochs'],seeds or task['seeds']
    res = {m: [] for m in METHODS}
    for s in range(S):
        for m,f in METHODS.items(): res[m].append(run(f, s, E))
        n = res[REF][-1]['n_groups']
        if n-1 > E//2:  # where candidate (b) differs from today's default
            for m,f in MIDPOINT.items(): res.setdefault(m, []).append(run(f, s, E))
        for lr in task['grid']:
            r = run(plain(lambda learn,E,lr=lr: learn.fit_one_cycle(E, lr)), s, E)
            res.setdefault(f'grid {lr:g}', []).append(r | dict(lr=lr))
        print(f"{name}: seed {s} done ({time.time()-t0:.0f}s)", file=sys.stderr, flush=True)
    return dict(task=name, epochs=E, seeds=S, grid=task['grid'], ood=task['ood'], seconds=time.time()-t0, results=res)

# ---- the report --------------------------------------------------------------------------------------------------

def se(x): x = np.asarray(x, dtype=float); return x.std(ddof=1)/np.sqrt(len(x)) if len(x) > 1 else float('nan')

def grid_tuned(t) -> list:
    "Each seed at the grid LR its own validation accuracy picks (then its lowest validation loss), its cost every grid run"
    runs = [t['results'][f'grid {lr:g}'] for lr in t['grid']]
    out = []
    for s in range(t['seeds']):
        best = max((r[s] for r in runs), key=lambda r: (round(r['valid'], 6), -r['valid_loss']))
        out.append(best | dict(choose=len(runs)*t['epochs']*best['n_iter'], picks=[best['lr']]))
    return out

def methods(t) -> dict:
    res = {m: v for m,v in t['results'].items() if not m.startswith('grid ')}
    return res | ({GRID_NAME: grid_tuned(t)} if t['grid'] else {})

def score(rs) -> np.ndarray: return np.array([(r['test'] + r['ood'])/2 for r in rs])
def col(rs, k) -> np.ndarray: return np.array([r[k] for r in rs], dtype=float)
def batches(t, r) -> float: return r['choose'] + (0 if 'lr' in r else t['epochs']*r['n_iter'])

def task_table(t):
    ms,ref = methods(t),methods(t)[REF]
    ref_b = np.mean([batches(t, r) for r in ref])
    print(f"\n### {t['task']}: {t['seeds']} seeds, {t['epochs']} epochs, {ref[0]['n_groups']} layer groups, "
          f"{ref[0]['n_iter']} training batches an epoch ({t['seconds']/60:.0f} min)\n")
    print(f"Accuracy in distribution (test) and out of it ({t['ood']}), mean (standard error over seeds); the paired "
          f"difference from `{REF}`, seed by seed; compute in batches (choosing + training) and over the reference's.\n")
    print("| method | test | OOD | test minus ref. | OOD minus ref. | batches | x ref. | LRs picked (seed 0) |")
    print("|---|---|---|---|---|---|---|---|")
    for m,rs in ms.items():
        dt,do = col(rs, 'test') - col(ref, 'test'),col(rs, 'ood') - col(ref, 'ood')
        b = np.mean([batches(t, r) for r in rs])
        diff = ('', '') if m == REF else (f"{dt.mean():+.3f} ({se(dt):.3f})", f"{do.mean():+.3f} ({se(do):.3f})")
        picks = ', '.join(f'{x:.2g}' for x in rs[0].get('picks', [])) or '-'
        print(f"| {m} | {col(rs, 'test').mean():.3f} ({se(col(rs, 'test')):.3f}) | {col(rs, 'ood').mean():.3f} "
              f"({se(col(rs, 'ood')):.3f}) | {diff[0]} | {diff[1]} | {b:.0f} | {b/ref_b:.2f} | {picks} |")
    flat = [m for m,rs in ms.items() if any(any(r.get('flat', [])) for r in rs)]
    if flat: print(f"\nA range test found a flat curve (no signal; the fit's own LR used) in: {', '.join(flat)}")

def meets(t, m) -> tuple:
    "Whether method `m` is within one SE of the reference or better, in and out of distribution, for <= 1.25x batches"
    rs,ref = methods(t)[m],methods(t)[REF]
    ok = []
    for k in ('test', 'ood'):
        d = col(rs, k) - col(ref, k)
        ok.append(d.mean() >= -se(d) if len(d) > 1 else d.mean() >= 0)
    ratio = np.mean([batches(t, r) for r in rs]) / np.mean([batches(t, r) for r in ref])
    return ok[0] and ok[1] and ratio <= 1.25, ok, ratio

def over_tasks(ts, a, b) -> tuple:
    "Rule's comparison of candidates `a` and `b` over tasks: mean of the tasks' mean paired score differences, and its SE"
    ds = [score(methods(t)[a]) - score(methods(t)[b]) for t in ts]
    m = np.mean([d.mean() for d in ds])
    s = np.sqrt(sum(se(d)**2 for d in ds)) / len(ds)
    return m,s

def decided(t, d1, d2) -> str:
    "The one call with the decided defaults on task `t`"
    mid = d2 == 'b' and 'one call, ratio=1, thaw by midpoint' in t['results']
    return f"one call, ratio={d1}" + (', thaw by midpoint' if mid else '')

def summary(ts, d1, d2) -> str:
    "The answer in one table: per task, test / OOD accuracy and batches of what a user types today, and of the one call"
    cols = ['fine_tune()', 'fit_one_cycle, default LR', REF]
    lines = ["| task | " + ' | '.join(f'`{c}`' for c in cols) + " | the one call, no LR | one call minus `lr_find` + one cycle |",
             "|---|" + '---|'*(len(cols) + 2)]
    for t in ts:
        ms = methods(t)
        def cell(m): rs = ms[m]; return (f"{col(rs, 'test').mean():.3f} / {col(rs, 'ood').mean():.3f} / "
                                         f"{np.mean([batches(t, r) for r in rs]):.0f}")
        m = decided(t, d1, d2)
        dt,do = col(ms[m], 'test') - col(ms[REF], 'test'),col(ms[m], 'ood') - col(ms[REF], 'ood')
        lines.append(f"| {t['task']} | " + ' | '.join(cell(c) for c in cols) + f" | {cell(m)} | "
                     f"{dt.mean():+.3f} ({se(dt):.3f}) / {do.mean():+.3f} ({se(do):.3f}) |")
    return '\n'.join(lines) + ("\n\nEach cell: test accuracy / out-of-distribution accuracy / batches (choosing + training), "
        "mean over seeds; the last column, paired by seed: difference (standard error) in and out of distribution.")

def decide(ts):
    print("\n## The rule applied (`benchmarks/choosing_rule.md`, written before the results)\n")
    m,s = over_tasks(ts, 'one call, ratio=1', 'one call, ratio=2.6')
    d1 = 1 if m > s else 2.6
    print(f"- D1: score of `ratio=1` minus `ratio=2.6` over {len(ts)} tasks: {m:+.4f} (SE {s:.4f}): "
          f"the default of `DiscriminativeLR('find')` is `ratio={d1}`.")
    tb = [t for t in ts if 'one call, ratio=1, thaw by midpoint' in t['results']]
    d2 = None
    if tb:
        r = 'ratio=1' if d1 == 1 else 'ratio=2.6'
        m,s = over_tasks(tb, f'one call, {r}, thaw by midpoint', f'one call, {r}')
        d2 = 'b' if m >= -s else 'a'
        print(f"- D2: on {', '.join(t['task'] for t in tb)} (more groups than thaws fit in half the fit), score of (b), "
              f"every group thawed by the midpoint, minus (a), one group an epoch (both `{r}`): {m:+.4f} (SE {s:.4f}): "
              f"`GradualUnfreeze()` there does ({d2}).")
    print("- The goal (within one SE of the reference or better, in and out of distribution, at <= 1.25x its batches), "
          "the decided one call on each task:")
    for t in ts:
        m = decided(t, d1, d2)
        ok,(it,oo),ratio = meets(t, m)
        print(f"  - {t['task']} (`{m}`): {'met' if ok else 'missed'} (in distribution {'ok' if it else 'no'}, "
              f"out of it {'ok' if oo else 'no'}, {ratio:.2f}x the batches)")
    beside(ts, tb, d2)
    return d1,d2

def beside(ts, tb, d2):
    "Beside the rule, for the reader: every one-call candidate against the goal, and D1 taken after D2 instead of before"
    print("\n## Beside the rule\n\nEvery one-call candidate against the goal, task by task (met / missed: in, out of distribution):")
    for t in ts:
        cs = [m for m in methods(t) if m.startswith('one call')]
        print(f"- {t['task']}: " + '; '.join(f"`{m}` {'met' if meets(t, m)[0] else 'missed'} "
              f"({', '.join('ok' if x else 'no' for x in meets(t, m)[1])})" for m in cs))
    if d2 == 'b' and tb:
        swap = [dict(t, results=t['results'] | {f'one call, ratio={r}': t['results'][f'one call, ratio={r}, thaw by midpoint']
                                                  for r in ('1', '2.6')}) if t in tb else t for t in ts]
        m,s = over_tasks(swap, 'one call, ratio=1', 'one call, ratio=2.6')
        print(f"\nThe rule decides D1 with today's schedule on every task, then D2. Taken the other way round (D1 with "
              f"the schedule D2 chose), the score of `ratio=1` minus `ratio=2.6` over {len(ts)} tasks is {m:+.4f} "
              f"(SE {s:.4f}): D1 would have chosen `ratio={1 if m > s else 2.6}`.")

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--tasks', nargs='+', default=['digits_a'], choices=list(TASKS))
    p.add_argument('--seeds', type=int, default=None)
    p.add_argument('--quick', action='store_true', help='one seed, short fits: a smoke run')
    p.add_argument('--json', default=None, help='write the per-seed results of the tasks run here')
    p.add_argument('--report', nargs='+', default=None, help='print the report of these results files (and apply the rule)')
    p.add_argument('--out', default=None, help='also write the printed report to this file, with the command and machine')
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.report: ts = [t for f in args.report for t in json.loads(Path(f).read_text())]
    else: ts = [run_task(n, args.quick, args.seeds) for n in args.tasks]
    if args.json: Path(args.json).write_text(json.dumps(ts, indent=1))
    with report(args.out, markdown=True):
        print("## Choosing the LRs: the one call given no LR against what a fastai user types today")
        for t in ts: task_table(t)
        d1,d2 = decide(ts)
        print("\n## In one table: the one call with the decided defaults against what a user types today\n")
        print(summary(ts, d1, d2))
    return ts

if __name__ == '__main__': main()
