"""What the callbacks cost per training batch, as the layer groups grow, beside fastai's own per-batch work.

Default: for an MLP in 5, 26 and 100 layer groups (one per block, as layer-wise LR decay on a 24-layer transformer has 26),
with fastai's Adam and with torch's AdamW in fastai's `OptimWrapper` (`foreach` on a CPU, `fused` on a GPU), a 2-epoch
`fit_one_cycle` with each configuration of the callbacks:
  GU + DLR              GradualUnfreeze({0: -2, 1: 0}), DiscriminativeLR(1e-3, ratio=1/0.8)   (layer-wise LR decay 0.8)
  GU + DLR restart      the same with restart=True
  GU patience + DLR sched   GradualUnfreeze({0: -2, 1: 0}), ThawOnPlateau(patience=1), DiscriminativeLR(1e-3, ratio=SchedLin(1, 1.25))
  GU + DLR grad         GradualUnfreeze({0: -2, 1: 0}), DiscriminativeLR(1e-3, ratio='grad')   (the gradient spread)
  GroupDiagnostics      GroupDiagnostics() at its default, alone
  GU + DLR find         GradualUnfreeze({0: -2, 1: 0}), DiscriminativeLR('find')   (one LR range test a fit)
It times the callbacks' own events (and forward hooks) per training batch, as a share of the fit's training time, and
beside them fastai's own per-batch work on the same fit (`ParamScheduler` and `Recorder`) and the physical floor: writing
one float per group into the optimizer, as many times as the callbacks do. Repeats give min / median / max; the share
is of the fit's own training time in the same run, so a busy machine moves it less than the times. The range test's
cost is per fit (one test, at the first stage): its batches and seconds.

`--end-to-end`: the earlier comparison, plain `fit_one_cycle` against the same with the callbacks and a plain PyTorch loop
over the same batches, interleaved, with per-stage throughput.

  python benchmarks/overhead.py                       # CPU: the table (about 10 minutes on 2 cores)
  python benchmarks/overhead.py --quick               # the smoke run of the test suite
  python benchmarks/overhead.py --device cuda --opt fused --amp bf16
  python benchmarks/overhead.py --end-to-end --device cuda --model resnet50 --size 224 --bs 128 --opt fused --amp bf16
"""
import argparse, statistics, sys, time
from pathlib import Path
from functools import partial
import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset
from fastai.basics import Learner, DataLoaders, TfmdDL, Callback, OptimWrapper, MSELossFlat, CrossEntropyLossFlat, params, set_seed, Recorder
from fastai.callback.schedule import ParamScheduler, SchedLin
sys.path.insert(0, str(Path(__file__).parent))
from _report import report
from fastai_disclr.all import GradualUnfreeze, ThawOnPlateau, DiscriminativeLR, GroupDiagnostics, LRRangeTest
from fastai_disclr.test_utils import quiet

def sync(device):
    if device.startswith('cuda'): torch.cuda.synchronize()

def make_model(args, groups=None):
    "The model, split into layer groups first to last"
    if args.model == 'mlp':
        h,n = args.hidden,groups or args.groups
        blocks = [nn.Sequential(nn.Linear(args.n_in if i == 0 else h, h), nn.ReLU()) for i in range(n-1)]
        return nn.Sequential(*blocks, nn.Linear(h, 1))
    import torchvision
    m = getattr(torchvision.models, args.model)(weights=None, num_classes=10)  # random weights: nothing is downloaded
    return nn.Sequential(nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1), m.layer2, m.layer3, m.layer4,
                         nn.Sequential(m.avgpool, nn.Flatten(), m.fc))

def make_data(args):
    "Synthetic batches, already on the device"
    g = torch.Generator().manual_seed(0)
    n = args.bs*args.n_batches
    if args.model == 'mlp': x,y = torch.randn(n, args.n_in, generator=g),torch.randn(n, 1, generator=g)
    else: x,y = torch.randn(n, 3, args.size, args.size, generator=g),torch.randint(0, 10, (n,), generator=g)
    return x.to(args.device),y.to(args.device)

def opt_func(opt):
    if opt == 'fastai': return None
    kw = dict(fused=True) if opt == 'fused' else dict(foreach=True)
    return partial(OptimWrapper, opt=partial(torch.optim.AdamW, **kw))

class EpochTimes(Callback):
    "Wall time of each epoch's training phase (validation excluded)"
    order,run_range_test = 100,False
    def __init__(self, device): self.device = device
    def before_fit(self): self.times = []
    def before_train(self): sync(self.device); self.t0 = time.perf_counter()
    def after_train(self): sync(self.device); self.times.append(time.perf_counter() - self.t0)

def train_dl(args, x, y):
    if args.loader == 'samples': return TfmdDL(TensorDataset(x, y), bs=args.bs, shuffle=False, num_workers=0)
    # bs=None: fastai's DataLoader yields the items as batches, so it hands over the same slices as the torch loop
    return TfmdDL([(x[i:i+args.bs], y[i:i+args.bs]) for i in range(0, len(x), args.bs)], bs=None, num_workers=0)

def learner(args, data, groups=None, opt=None):
    set_seed(0)
    x,y = data
    dls = DataLoaders(train_dl(args, x, y), TfmdDL(TensorDataset(x[:args.bs], y[:args.bs]), bs=args.bs, num_workers=0), device=args.device)
    o = opt_func(opt or args.opt)
    learn = Learner(dls, make_model(args, groups).to(args.device), loss_func=MSELossFlat() if args.model == 'mlp' else CrossEntropyLossFlat(),
                    splitter=lambda m: [params(g) for g in m], **(dict(opt_func=o) if o else {}))
    quiet(learn)
    if args.amp == 'bf16': learn.to_bf16()
    elif args.amp == 'fp16': learn.to_fp16()
    return learn

EVENTS = ['before_fit', 'before_epoch', 'before_train', 'before_batch', 'after_pred', 'after_loss', 'before_backward',
          'after_backward', 'before_step', 'after_step', 'after_batch', 'after_train', 'before_validate', 'after_validate',
          'after_epoch', 'after_fit']

class EventTimer:
    "Wall time spent inside the events (and forward hooks) of some callbacks (wraps their methods on the instances)"
    def __init__(self, cbs, training_only=False):
        self.total,self.cbs,self.training_only = 0.,cbs,training_only
        for cb in cbs:
            for ev in EVENTS:
                f = getattr(type(cb), ev, None)
                if f is not None: setattr(cb, ev, self._timed(f.__get__(cb), cb))
            # forward hooks run inside the model's forward: GroupDiagnostics hooks `cb._hook` in `setup`
            if hasattr(type(cb), '_hook'): cb._hook = self._timed(type(cb)._hook.__get__(cb), cb)
    def _timed(self, f, cb):
        def _inner(*args):
            t0 = time.perf_counter(); f(*args); dt = time.perf_counter() - t0
            if not self.training_only or getattr(cb, 'training', True): self.total += dt
        return _inner

class ClassTimer:
    "Wall time inside some events of fastai's own classes, during the training phase (wraps the class methods for a run)"
    def __init__(self, *targets): self.targets,self.total = targets,0.
    def __enter__(self):
        self.saved = []
        for cls,ev in self.targets:
            f = getattr(cls, ev)
            self.saved.append((cls, ev, f))
            def _inner(cb, *args, _f=f):
                t0 = time.perf_counter(); _f(cb, *args)
                if getattr(cb, 'training', True): self.total += time.perf_counter() - t0
            setattr(cls, ev, _inner)
        return self
    def __exit__(self, *exc):
        for cls,ev,f in self.saved: setattr(cls, ev, f)

def floor_us(learn, writes_per_batch:int, reps:int=2000) -> float:
    "Microseconds a batch spends writing one float per group into the optimizer, `writes_per_batch` times: the physical floor"
    opt = learn.opt
    pgs = opt.opt.param_groups if isinstance(opt, OptimWrapper) else opt.hypers
    vals = [1e-3]*len(pgs)
    t0 = time.perf_counter()
    for _ in range(reps):
        for _ in range(writes_per_batch):
            for pg,v in zip(pgs, vals): pg['lr'] = v
    return 1e6*(time.perf_counter() - t0)/reps

CONFIGS = {  # name: (callbacks, LR writes per batch (the floor), a range test in it)
    'GU + DLR':                 (lambda: [GradualUnfreeze({0: -2, 1: 0}), DiscriminativeLR(1e-3, ratio=1/0.8)], 1),
    'GU + DLR restart':         (lambda: [GradualUnfreeze({0: -2, 1: 0}), DiscriminativeLR(1e-3, ratio=1/0.8, restart=True)], 2),
    'GU patience + DLR sched':  (lambda: [GradualUnfreeze({0: -2, 1: 0}), ThawOnPlateau(patience=1),
                                          DiscriminativeLR(1e-3, ratio=SchedLin(1., 1.25))], 1),
    'GU + DLR grad':            (lambda: [GradualUnfreeze({0: -2, 1: 0}), DiscriminativeLR(1e-3, ratio='grad')], 1),
    'GroupDiagnostics':         (lambda: [GroupDiagnostics()], 0),
    'GU + DLR find':            (lambda: [GradualUnfreeze({0: -2, 1: 0}), DiscriminativeLR('find', ratio=1/0.8, finder=LRRangeTest())], 1),
}

def one_fit(args, data, groups, opt, config):
    "The callbacks' time per batch (us), fastai's own (ParamScheduler and Recorder), the fit's training time, the range tests"
    learn = learner(args, data, groups, opt)
    cbs = CONFIGS[config][0]()
    timer,times = EventTimer(cbs),EpochTimes(args.device)
    with ClassTimer((ParamScheduler, 'before_batch'), (ParamScheduler, 'after_batch'), (Recorder, 'after_batch')) as fastai_t:
        learn.fit_one_cycle(args.epochs, 1e-3, cbs=cbs+[times])
    dlr = next((cb for cb in cbs if isinstance(cb, DiscriminativeLR)), None)
    tests = dlr.found if dlr is not None else []
    test_s = sum(r['seconds'] for r in tests)
    n = args.epochs*args.n_batches
    train = sum(times.times)  # the range tests run in DiscriminativeLR's `before_train`, before the epoch's timer starts
    return dict(cb=1e6*(timer.total - test_s)/n, fastai=1e6*fastai_t.total/n, train=train, share=100*(timer.total - test_s)/train,
                floor=floor_us(learn, CONFIGS[config][1]), tests=[(r['batches'], r['seconds']) for r in tests],
                step=1e6*train/n)

def mmm(xs, fmt='{:.1f}'): return ' / '.join(fmt.format(v) for v in (min(xs), statistics.median(xs), max(xs)))

def groups_table(args):
    data = make_data(args)
    opts = ['fastai', 'fused' if args.device.startswith('cuda') else 'foreach']
    one_fit(args, data, args.group_counts[0], opts[0], 'GU + DLR')  # warm-up: allocations, kernels, caches
    print(f"device {args.device} ({args.threads if args.device == 'cpu' else ''} threads), MLP (hidden {args.hidden}), amp {args.amp}, "
          f"bs {args.bs}, {args.n_batches} batches x {args.epochs} epochs of fit_one_cycle, {args.repeats} repeats; "
          "min/median/max over the repeats\n")
    print("| groups | optimizer | callbacks | step, ms | callbacks, us/batch | share of the fit, % | fastai's own, us/batch | floor, us/batch |")
    print("|---|---|---|---|---|---|---|---|")
    found = []
    for g in args.group_counts:
        for opt in opts:
            for config in args.configs:
                rs = [one_fit(args, data, g, opt, config) for _ in range(args.repeats)]
                oname = "fastai Adam" if opt == 'fastai' else f"torch AdamW {opt}"
                print(f"| {g} | {oname} | {config} | {statistics.median([r['step'] for r in rs])/1000:.2f} | {mmm([r['cb'] for r in rs])} | "
                      f"{mmm([r['share'] for r in rs], '{:.2f}')} | {mmm([r['fastai'] for r in rs])} | {statistics.median([r['floor'] for r in rs]):.1f} |", flush=True)
                if rs[0]['tests']: found.append((g, oname, rs))
    if found:
        print("\nThe range test of `GU + DLR find` (one a fit, at its first stage): its batches and seconds, and the same "
              "as training batches of the fit (median over repeats)")
        for g,oname,rs in found:
            per = [(b, s) for r in rs for b,s in r['tests']]
            secs = statistics.median([s for _,s in per]); step = statistics.median([r['step'] for r in rs])/1e6
            print(f"  - {g} groups, {oname}: {statistics.median([b for b,_ in per]):.0f} batches, {secs:.2f} s a fit, "
                  f"= {secs/step:.0f} training batches of the fit")

# ---------------------------------------------------------------- the end-to-end comparison
def fastai_run(args, data, cbs):
    learn,times = learner(args, data),EpochTimes(args.device)
    learn.fit_one_cycle(args.epochs, args.lr, cbs=cbs+[times])
    return times.times

def torch_run(args, data):
    "A plain PyTorch loop over the same batches: AdamW, OneCycleLR, autocast if asked"
    set_seed(0)
    x,y = data
    model = make_model(args).to(args.device)
    kw = dict(fused=True) if args.opt == 'fused' else dict(foreach=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, **kw)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.epochs*args.n_batches)
    loss_fn = nn.MSELoss() if args.model == 'mlp' else nn.CrossEntropyLoss()
    dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(args.amp)
    times = []
    for _ in range(args.epochs):
        model.train(); sync(args.device); t0 = time.perf_counter()
        for i in range(args.n_batches):
            xb,yb = x[i*args.bs:(i+1)*args.bs],y[i*args.bs:(i+1)*args.bs]
            with torch.autocast(args.device.split(':')[0], dtype=dtype, enabled=dtype is not None):
                loss = loss_fn(model(xb), yb)
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True); sched.step()
        sync(args.device); times.append(time.perf_counter() - t0)
    return times

def ulmfit(args): return {i: -(i+1) for i in range(min(args.groups, args.epochs)-1)} | {min(args.groups, args.epochs)-1: 0}

def timed_callbacks_run(args, data):
    "The `callbacks` run, also timing what happens inside the two callbacks"
    cbs = [GradualUnfreeze({0: 0}), DiscriminativeLR(ratio=2.6)] + ([GroupDiagnostics(every=args.diagnostics)] if args.diagnostics else [])
    timer = EventTimer(cbs)
    times = fastai_run(args, data, cbs)
    return times,timer.total

E2E = {
    'plain':     lambda args,data: fastai_run(args, data, []),
    'callbacks': lambda args,data: timed_callbacks_run(args, data),
    'staged':    lambda args,data: fastai_run(args, data, [GradualUnfreeze(ulmfit(args)), DiscriminativeLR(ratio=2.6)]),
    'torch':     lambda args,data: torch_run(args, data),
}

def summary(xs): return f"min {min(xs):.3f}  median {statistics.median(xs):.3f}  max {max(xs):.3f}"

def end_to_end(args):
    if args.model != 'mlp': args.groups = 5
    data = make_data(args)
    E2E['plain'](args, data)  # warm-up: allocations, kernels, caches
    res,inside = {k: [] for k in E2E},[]
    for r in range(args.repeats):
        for k in (list(E2E) if r % 2 == 0 else list(E2E)[::-1]):
            out = E2E[k](args, data)
            if k == 'callbacks': out,t_in = out; inside.append(t_in)
            res[k].append(out)
    total = {k: [sum(t) for t in v] for k,v in res.items()}
    n = args.bs*args.n_batches
    print(f"device {args.device} ({args.threads if args.device == 'cpu' else ''} threads), model {args.model}, opt {args.opt}, amp {args.amp}, "
          f"loader {args.loader}, diagnostics every {args.diagnostics or '-'}, bs {args.bs}, {args.n_batches} batches x {args.epochs} epochs, {args.repeats} repeats")
    print(f"step time (plain, median): {1000*statistics.median(total['plain'])/(args.n_batches*args.epochs):.2f} ms")
    for k in ['callbacks', 'torch']:
        print(f"{k:>9} / plain training time: {summary([a/b for a,b in zip(total[k], total['plain'])])}")
    steps = args.n_batches*args.epochs
    per_batch = [1e6*t/steps for t in inside]
    print(f"time inside the callbacks per training batch: {summary(per_batch).replace('.000', '')} us"
          f" = {100*statistics.median(inside)/statistics.median(total['plain']):.2f}% of the plain training time (median)")
    print(f"fastai + callbacks, throughput as a share of the plain torch loop (median): "
          f"{100*statistics.median([b/a for a,b in zip(total['callbacks'], total['torch'])]):.1f}%")
    stages = ulmfit(args)
    print("samples/s per epoch, median over repeats (staged: trainable groups at that epoch)")
    for e in range(args.epochs):
        v = stages[max(s for s in stages if s <= e)]  # the freeze_to argument in force
        trainable = -v if v < 0 else args.groups - v
        row = {k: n/statistics.median([t[e] for t in res[k]]) for k in ['plain', 'staged']}
        print(f"  epoch {e}: plain {row['plain']:9.0f}   staged {row['staged']:9.0f}  ({trainable}/{args.groups} groups trainable, x{row['staged']/row['plain']:.2f})")
    return dict(total=total, epochs=res)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', default='cpu'); p.add_argument('--model', default='mlp')
    p.add_argument('--groups', type=int, default=5, help='layer groups of the MLP in --end-to-end')
    p.add_argument('--group-counts', type=int, nargs='+', default=[5, 26, 100], help='layer groups of the MLP in the table')
    p.add_argument('--configs', nargs='+', default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument('--n-in', type=int, default=256); p.add_argument('--hidden', type=int, default=384)
    p.add_argument('--size', type=int, default=224); p.add_argument('--bs', type=int, default=128)
    p.add_argument('--n-batches', type=int, default=30, help='batches per epoch')
    p.add_argument('--epochs', type=int, default=None, help='epochs per fit (default: 2 for the table, 5 end to end)')
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--opt', default='fastai', choices=['fastai', 'foreach', 'fused'], help="end to end: fastai's Adam, or torch's AdamW in an OptimWrapper")
    p.add_argument('--amp', default='none', choices=['none', 'bf16', 'fp16'])
    p.add_argument('--loader', default='batches', choices=['batches', 'samples'],
                   help="fastai's DataLoader over the torch loop's ready-made batches, or over samples (it indexes and collates each one)")
    p.add_argument('--diagnostics', type=int, default=0, help='end to end: also run GroupDiagnostics(every=N) in the `callbacks` config (0: no)')
    p.add_argument('--threads', type=int, default=1, help='torch CPU threads (1: steadier timings on a shared machine)')
    p.add_argument('--end-to-end', action='store_true', help='plain fastai against the callbacks and a plain torch loop, and per-stage throughput')
    p.add_argument('--quick', action='store_true', help='tiny sizes, one repeat: a smoke run')
    p.add_argument('--out', default=None, help='also write the printed report to this file, with the command and machine (the README quotes benchmarks/results/)')
    args = p.parse_args(argv)
    with report(args.out, markdown=not args.end_to_end): return _run(args)

def _run(args):
    if args.epochs is None: args.epochs = 5 if args.end_to_end else 2
    if args.quick: args.hidden,args.n_in,args.n_batches,args.repeats,args.group_counts = 32,16,4,1,[3, 6]
    if args.device == 'cpu': torch.set_num_threads(args.threads)
    return end_to_end(args) if args.end_to_end else groups_table(args)

if __name__ == '__main__': main()
