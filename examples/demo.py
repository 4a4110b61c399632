"""`make demo`: pretrain a small CNN on handwritten digits 0-4, transfer it to digits 5-9 from 5 labels per class, and
compare `fine_tune`, one LR for all layers and `GradualUnfreeze` + `DiscriminativeLR` on the test images, as they are and
under corruptions. Prints a table and saves a plot of the per-group LRs. CPU, offline, about a minute."""
from __future__ import annotations
import os, time
from pathlib import Path
import numpy as np
import torch
from fastcore.script import call_parse
from fastai_disclr.all import GradualUnfreeze, DiscriminativeLR
from .digits import pretrain_digits, transfer

__all__ = ['demo_methods', 'run_demo', 'main']

def _ulmfit(learn, epochs, lr):
    dlr = DiscriminativeLR(ratio=2.6)
    learn.fit_one_cycle(epochs, lr, cbs=[GradualUnfreeze(), dlr])
    return dlr

demo_methods = {
    'from scratch':            lambda learn,epochs,lr: learn.fit_one_cycle(epochs, lr),
    'head only':               lambda learn,epochs,lr: (learn.freeze(), learn.fit_one_cycle(epochs, lr)),
    'fine_tune':               lambda learn,epochs,lr: learn.fine_tune(epochs-1, lr, freeze_epochs=1),
    'uniform LR, all layers':  lambda learn,epochs,lr: learn.fit_one_cycle(epochs, lr),
    'GradualUnfreeze + DiscriminativeLR': _ulmfit,
}

def run_demo(
    seeds:int=5, # Seeds per method (each draws its own 5-shot sample and head)
    n_shot:int=5, # Labelled target images per class
    epochs:int=12, # Epochs of fine-tuning, the same for every method
    lr:float=1e-2, # The LR of every method
    pretrain_epochs:int=10, # Epochs of pretraining on digits 0-4
    out:str|Path='demo_out', # Folder for the plot
    verbose:bool=True, # Print progress and the table
) -> dict:
    "Pretrain, transfer with every method over `seeds`, print a table of test accuracy, save the per-group LR plot"
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    say = print if verbose else (lambda *a, **k: None)
    t0 = time.time()
    pre = pretrain_digits(pretrain_epochs)
    say(f"pretrained on digits 0-4: held-out accuracy {pre['accuracy']:.3f} ({time.time()-t0:.0f}s)")
    res,dlr = {},None
    for m,fit in demo_methods.items():
        runs = [transfer(fit, pre['body'], seed=s, n_shot=n_shot, epochs=epochs, lr=lr, pretrained=m != 'from scratch')
                for s in range(seeds)]
        if dlr is None and isinstance(runs[0]['out'], DiscriminativeLR): dlr = runs[0]['out']
        res[m] = dict(test=np.array([r['test'] for r in runs]), ood=np.array([r['ood'] for r in runs]))
        say(f"  {m:<36} {' '.join(f'{a:.3f}' for a in res[m]['test'])}  ({time.time()-t0:.0f}s)")
    say(f"\nTransfer digits 0-4 -> 5-9, {n_shot} labels per class, {epochs} epochs, LR {lr:g}, {seeds} seeds: test accuracy"
        " (mean, std; corrupted: shift, noise, rotation, blur)\n")
    say(f"| {'method':<36} | mean  | std   | corrupted |\n|{'-'*38}|-------|-------|-----------|")
    for m,r in res.items(): say(f"| {m:<36} | {r['test'].mean():.3f} | {r['test'].std():.3f} | {r['ood'].mean():.3f}     |")
    out = Path(out); out.mkdir(parents=True, exist_ok=True)
    ax = dlr.plot_lrs()
    ax.set_title('GradualUnfreeze + DiscriminativeLR on the digits transfer (seed 0)\nsolid: trainable, dotted: frozen, '
                 'dashed: stage boundaries', fontsize=9)
    png = out/'per_group_lrs.png'
    ax.figure.savefig(png, dpi=110, bbox_inches='tight'); plt.close(ax.figure)
    say(f"\nper-group LR plot: {png}   (total {time.time()-t0:.0f}s)")
    return dict(accuracy=res, pretrain_accuracy=pre['accuracy'], plot=png, seconds=time.time()-t0)

@call_parse
def main(
    seeds:int=5, # Seeds per method
    n_shot:int=5, # Labelled target images per class
    epochs:int=12, # Epochs of fine-tuning
    pretrain_epochs:int=10, # Epochs of pretraining on digits 0-4
    out:str='demo_out', # Folder for the plot
):
    "Run the transfer demo: a table of accuracies and a PNG of the per-group LR schedule"
    # small models: one torch thread (or OMP_NUM_THREADS) is fastest on a busy machine, and gives the same figures anywhere
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', 1)))
    run_demo(seeds=seeds, n_shot=n_shot, epochs=epochs, pretrain_epochs=pretrain_epochs, out=out)
