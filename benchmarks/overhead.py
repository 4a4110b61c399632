"""Overhead of GradualUnfreeze + DiscriminativeLR on fastai's `fit_one_cycle`, and per-stage throughput.

In one process and interleaved (the order alternates each repeat), on the same model and data:
  plain      fastai `fit_one_cycle`
  callbacks  the same with `GradualUnfreeze({0: 0})` (every group trains, so the compute is identical) and
             `DiscriminativeLR(ratio=2.6)`: what the callbacks cost when nothing changes
  staged     the same with ULMFiT's schedule (head only, then one more group each epoch): frozen groups skip their backward
  torch      a plain PyTorch loop (same model, batches, optimizer and one-cycle schedule), the reference for the fast path
Prints training-time ratios against `plain` as min / median / max over the repeats, and samples/s per epoch (per stage).
By default fastai's DataLoader hands over the torch loop's own ready-made batches (`--loader batches`), so that
`torch` against `callbacks` compares the training loops; `--loader samples` lets it index and collate every sample.
`--opt foreach` (CPU) or `--opt fused` (CUDA) is the fast path: torch's AdamW in fastai's `OptimWrapper`.

  python benchmarks/overhead.py                        # CPU, an MLP whose training step takes about 10 ms
  python benchmarks/overhead.py --opt foreach          # the fast path against the plain torch loop, on a CPU
  python benchmarks/overhead.py --quick                # the smoke run of the test suite
  python benchmarks/overhead.py --device cuda --model resnet50 --size 224 --bs 128 --opt fused --amp bf16
"""
import argparse, statistics, sys, time
from pathlib import Path
from functools import partial
import torch
from torch import nn
from torch.utils.data import TensorDataset
from fastai.basics import Learner, DataLoaders, TfmdDL, Callback, OptimWrapper, MSELossFlat, CrossEntropyLossFlat, params, set_seed
sys.path.insert(0, str(Path(__file__).parent))
from _report import report
from fastai_disclr.all import GradualUnfreeze, DiscriminativeLR, GroupDiagnostics
from fastai_disclr.test_utils import quiet

def sync(device):
    if device.startswith('cuda'): torch.cuda.synchronize()

def make_model(args):
    "The model, split into layer groups first to last"
    if args.model == 'mlp':
        h = args.hidden
        blocks = [nn.Sequential(nn.Linear(args.n_in if i == 0 else h, h), nn.ReLU()) for i in range(args.groups-1)]
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

def opt_func(args):
    if args.opt == 'fastai': return None
    kw = dict(fused=True) if args.opt == 'fused' else dict(foreach=True)
    return partial(OptimWrapper, opt=partial(torch.optim.AdamW, **kw))

class EpochTimes(Callback):
    "Wall time of each epoch's training phase (validation excluded)"
    order = 100
    def __init__(self, device): self.device = device
    def before_fit(self): self.times = []
    def before_train(self): sync(self.device); self.t0 = time.perf_counter()
    def after_train(self): sync(self.device); self.times.append(time.perf_counter() - self.t0)

def train_dl(args, x, y):
    if args.loader == 'samples': return TfmdDL(TensorDataset(x, y), bs=args.bs, shuffle=False, num_workers=0)
    # bs=None: fastai's DataLoader yields the items as batches, so it hands over the same slices as the torch loop
    return TfmdDL([(x[i:i+args.bs], y[i:i+args.bs]) for i in range(0, len(x), args.bs)], bs=None, num_workers=0)

def learner(args, data):
    set_seed(0)
    x,y = data
    dls = DataLoaders(train_dl(args, x, y), TfmdDL(TensorDataset(x[:args.bs], y[:args.bs]), bs=args.bs, num_workers=0), device=args.device)
    kw = dict(opt_func=opt_func(args)) if args.opt != 'fastai' else {}
    learn = Learner(dls, make_model(args).to(args.device), loss_func=MSELossFlat() if args.model == 'mlp' else CrossEntropyLossFlat(),
                    splitter=lambda m: [params(g) for g in m], **kw)
    quiet(learn)
    if args.amp == 'bf16': learn.to_bf16()
    elif args.amp == 'fp16': learn.to_fp16()
    return learn

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

class EventTimer:
    "Wall time spent inside the events (and forward hooks) of some callbacks (wraps their methods on the instances)"
    def __init__(self, cbs):
        self.total,self.cbs = 0.,cbs
        for cb in cbs:
            for ev in ['before_fit', 'before_epoch', 'before_train', 'before_batch', 'before_step', 'after_step', 'after_batch', 'after_train', 'after_fit']:
                f = getattr(type(cb), ev, None)
                if f is not None: setattr(cb, ev, self._timed(f.__get__(cb)))
            # forward hooks run inside the model's forward: GroupDiagnostics hooks `cb._hook` in before_fit
            if hasattr(type(cb), '_hook'): cb._hook = self._timed(type(cb)._hook.__get__(cb))
    def _timed(self, f):
        def _inner(*args):
            t0 = time.perf_counter(); f(*args); self.total += time.perf_counter() - t0
        return _inner

def timed_callbacks_run(args, data):
    "The `callbacks` run, also timing what happens inside the two callbacks"
    cbs = [GradualUnfreeze({0: 0}), DiscriminativeLR(ratio=2.6)] + ([GroupDiagnostics(every=args.diagnostics)] if args.diagnostics else [])
    timer = EventTimer(cbs)
    times = fastai_run(args, data, cbs)
    return times,timer.total

CONFIGS = {
    'plain':     lambda args,data: fastai_run(args, data, []),
    'callbacks': lambda args,data: timed_callbacks_run(args, data),
    'staged':    lambda args,data: fastai_run(args, data, [GradualUnfreeze(ulmfit(args)), DiscriminativeLR(ratio=2.6)]),
    'torch':     lambda args,data: torch_run(args, data),
}

def summary(xs): return f"min {min(xs):.3f}  median {statistics.median(xs):.3f}  max {max(xs):.3f}"

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', default='cpu'); p.add_argument('--model', default='mlp')
    p.add_argument('--groups', type=int, default=5, help='layer groups of the MLP (a ResNet has 5)')
    p.add_argument('--n-in', type=int, default=256); p.add_argument('--hidden', type=int, default=384)
    p.add_argument('--size', type=int, default=224); p.add_argument('--bs', type=int, default=128)
    p.add_argument('--n-batches', type=int, default=30, help='batches per epoch')
    p.add_argument('--epochs', type=int, default=5); p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--opt', default='fastai', choices=['fastai', 'foreach', 'fused'], help="fastai's Adam, or torch's AdamW in an OptimWrapper")
    p.add_argument('--amp', default='none', choices=['none', 'bf16', 'fp16'])
    p.add_argument('--loader', default='batches', choices=['batches', 'samples'],
                   help="fastai's DataLoader over the torch loop's ready-made batches, or over samples (it indexes and collates each one)")
    p.add_argument('--diagnostics', type=int, default=0, help='also run GroupDiagnostics(every=N) in the `callbacks` config (0: no)')
    p.add_argument('--threads', type=int, default=1, help='torch CPU threads (1: steadier timings on a shared machine)')
    p.add_argument('--quick', action='store_true', help='tiny sizes, one repeat: a smoke run')
    p.add_argument('--out', default=None, help='also write the printed report to this file, with the command and machine (the README quotes benchmarks/results/)')
    args = p.parse_args(argv)
    with report(args.out, markdown=False): return _run(args)

def _run(args):
    if args.quick: args.hidden,args.n_in,args.n_batches,args.epochs,args.repeats = 32,16,4,2,1
    if args.model != 'mlp': args.groups = 5
    if args.device == 'cpu': torch.set_num_threads(args.threads)
    data = make_data(args)
    CONFIGS['plain'](args, data)  # warm-up: allocations, kernels, caches
    res,inside = {k: [] for k in CONFIGS},[]
    for r in range(args.repeats):
        for k in (list(CONFIGS) if r % 2 == 0 else list(CONFIGS)[::-1]):
            out = CONFIGS[k](args, data)
            if k == 'callbacks': out,t_in = out; inside.append(t_in)
            res[k].append(out)
    total = {k: [sum(t) for t in v] for k,v in res.items()}
    n = args.bs*args.n_batches
    print(f"device {args.device} ({args.threads if args.device == 'cpu' else ''} threads), model {args.model}, opt {args.opt}, amp {args.amp}, loader {args.loader}, diagnostics every {args.diagnostics or '-'}, bs {args.bs}, {args.n_batches} batches x {args.epochs} epochs, {args.repeats} repeats")
    print(f"step time (plain, median): {1000*statistics.median(total['plain'])/(args.n_batches*args.epochs):.2f} ms")
    for k in ['callbacks', 'torch']:
        print(f"{k:>9} / plain training time: {summary([a/b for a,b in zip(total[k], total['plain'])])}")
    print(f"overhead of the callbacks, end to end (median; within the noise of the ratios above): {100*(statistics.median([a/b for a,b in zip(total['callbacks'], total['plain'])])-1):+.2f}%")
    steps = args.n_batches*args.epochs
    per_batch = [1e6*t/steps for t in inside]
    print(f"time inside the callbacks per training batch: {summary(per_batch).replace('.000', '')} us"
          f" = {100*statistics.median(inside)/statistics.median(total['plain']):.2f}% of the plain training time (median)")
    print(f"fastai + callbacks, throughput as a share of the plain torch loop (median): {100*statistics.median([b/a for a,b in zip(total['callbacks'], total['torch'])]):.1f}%")
    stages = ulmfit(args)
    print("samples/s per epoch, median over repeats (staged: trainable groups at that epoch)")
    for e in range(args.epochs):
        v = stages[max(s for s in stages if s <= e)]  # the freeze_to argument in force
        trainable = -v if v < 0 else args.groups - v
        row = {k: n/statistics.median([t[e] for t in res[k]]) for k in ['plain', 'staged']}
        print(f"  epoch {e}: plain {row['plain']:9.0f}   staged {row['staged']:9.0f}  ({trainable}/{args.groups} groups trainable, x{row['staged']/row['plain']:.2f})")
    return dict(total=total, epochs=res)

if __name__ == '__main__': main()
