"""The offline transfer task of the demo and the benchmarks: a small CNN pretrained on scikit-learn's handwritten digits 0-4,
transferred to digits 5-9 from a few labels per class, tested in distribution and under corruptions (shift, noise,
rotation, blur), as CIFAR-10-C tests CIFAR-10."""
from __future__ import annotations
import math
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset
from fastai.basics import Learner, DataLoaders, TfmdDL, CrossEntropyLossFlat, accuracy, params, set_seed
from fastai_disclr.test_utils import quiet
from fastai_disclr.splitters import layer_splitter

__all__ = ['digits_data', 'digits_cnn', 'digits_splitter', 'digits_learner', 'pretrain_digits', 'target_split',
           'target_dls', 'CORRUPTIONS', 'corrupt', 'transfer']

def digits_data():
    "The 8x8 handwritten digits that ship with scikit-learn, as a float tensor (n, 1, 8, 8) in [0, 1] and labels"
    from sklearn.datasets import load_digits
    x,y = load_digits(return_X_y=True)
    return torch.tensor(x, dtype=torch.float32).view(-1, 1, 8, 8)/16., torch.tensor(y)

def _shifts(x):
    "`x` and its four one-pixel translations"
    p = F.pad(x, (1, 1, 1, 1))
    return torch.cat([x] + [p[..., dy:dy+8, dx:dx+8] for dx,dy in [(0, 1), (1, 0), (2, 1), (1, 2)]])

def _dls(x, y, xv, yv, bs):
    return DataLoaders(TfmdDL(TensorDataset(x, y), bs=bs, shuffle=True, num_workers=0),
                       TfmdDL(TensorDataset(xv, yv), bs=512, num_workers=0), device='cpu')

def digits_cnn(n_out:int=5) -> nn.Sequential:
    "A small CNN in four layer groups: three conv blocks (BatchNorm, ReLU) and a pooled linear head"
    def block(ni, no, stride=1): return nn.Sequential(nn.Conv2d(ni, no, 3, stride=stride, padding=1), nn.BatchNorm2d(no), nn.ReLU())
    return nn.Sequential(block(1, 16), block(16, 32), block(32, 64, 2),
                         nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, n_out)))

def digits_splitter(m) -> list:
    "One layer group per child of `digits_cnn`; a timm model's own groups (`layer_splitter`)"
    return layer_splitter(m) if hasattr(m, 'group_matcher') else [params(g) for g in m]

def digits_learner(dls, model) -> Learner:
    "A quiet `Learner` (no progress bar, no logging) with one layer group per child of `model`"
    return quiet(Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=accuracy, splitter=digits_splitter))

def _labels(y, classes): return torch.tensor([list(classes).index(int(c)) for c in y])

def pretrain_digits(epochs:int=10, seed:int=0,
    classes:tuple=(0, 1, 2, 3, 4), # The digits to pretrain on
    model:callable=digits_cnn, # `model(n_out)`: the network (its last child the head)
    size:int=8, # Image size (the 8x8 digits resized)
    lr:float=1e-2) -> dict:
    "Train `model` on `classes`; return the weights of its body (all but its last child) and its accuracy on held-out ones"
    x,y = digits_data()
    src = torch.where(torch.isin(y, torch.tensor(classes)))[0]
    src = src[torch.randperm(len(src), generator=torch.Generator().manual_seed(seed))]
    set_seed(seed)
    trn,val = src[100:],src[:100]
    m = model(len(classes))
    learn = digits_learner(_dls(_resize(_shifts(x[trn]), size), _labels(y[trn], classes).repeat(5), _resize(x[val], size),
                                _labels(y[val], classes), bs=64), m)
    learn.fit_one_cycle(epochs, lr)
    head = [n for n,_ in m.named_children()][-1]
    body = {k: v.clone() for k,v in learn.model.state_dict().items() if not k.startswith(head + '.')}
    return dict(body=body, accuracy=float(learn.validate()[1]), model=model, size=size)

def _resize(x, size): return x if size == 8 else F.interpolate(x, size=(size, size), mode='bilinear', align_corners=False)

def target_split(n_shot:int=5, seed:int=0, classes:tuple=(5, 6, 7, 8, 9)) -> tuple:
    "Indices of the digits `classes`: `n_shot` random images per class to train on, and all the others"
    x,y = digits_data()
    rng,trn = np.random.RandomState(seed),[]
    for c in classes: trn += list(rng.choice(np.where(y.numpy() == c)[0], n_shot, replace=False))
    return np.array(trn),np.setdiff1d(np.where(np.isin(y.numpy(), classes))[0], trn)

def target_dls(n_shot:int=5, seed:int=0, bs:int=16) -> DataLoaders:
    "Digits 5-9 (labels 0-4): `n_shot` random images per class to train on, all the others to validate on"
    x,y = digits_data()
    trn,rest = target_split(n_shot, seed)
    return _dls(x[trn], y[trn]-5, x[rest], y[rest]-5, bs=bs)

CORRUPTIONS = ('shift', 'noise', 'rotate', 'blur')

def corrupt(
    x:torch.Tensor, # Images (n, 1, 8, 8) in [0, 1]
    kind:str, # One of `CORRUPTIONS`
    seed:int=0, # Draws of the random corruptions
) -> torch.Tensor:
    "`x` under a corruption: a shift of 1 or 2 pixels, Gaussian noise (sd 0.3), a rotation of 15-30 degrees, or a blur"
    g = torch.Generator().manual_seed(seed)
    n = len(x)
    if kind == 'shift':
        d = torch.randint(1, 3, (n, 2), generator=g) * (torch.randint(0, 2, (n, 2), generator=g)*2 - 1)
        theta = torch.zeros(n, 2, 3); theta[:, 0, 0] = theta[:, 1, 1] = 1; theta[:, :, 2] = d.float()*2/8
    elif kind == 'rotate':
        a = (torch.rand(n, generator=g)*15 + 15) * (torch.randint(0, 2, (n,), generator=g)*2 - 1) * math.pi/180
        theta = torch.stack([torch.stack([a.cos(), -a.sin(), torch.zeros(n)], 1), torch.stack([a.sin(), a.cos(), torch.zeros(n)], 1)], 1)
    elif kind == 'noise': return (x + 0.3*torch.randn(x.shape, generator=g)).clamp(0, 1)
    elif kind == 'blur':
        k = torch.tensor([1., 2., 1.]); k = (k[:, None]*k[None])/16
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode='replicate'), k[None, None])
    else: raise ValueError(f"unknown corruption {kind!r}: one of {CORRUPTIONS}")
    grid = F.affine_grid(theta, x.shape, align_corners=False)
    return F.grid_sample(x, grid, padding_mode='zeros', align_corners=False)

def transfer(
    fit:callable, # `fit(learn, epochs, lr)`: fine-tunes `learn` (and may return something, e.g. a callback)
    body:dict, # Pretrained body weights, from `pretrain_digits`
    seed:int=0, # The labelled sample, the split of the other images, the head's initialisation
    n_shot:int=5, # Labelled images per class
    epochs:int=12, lr:float=1e-2,
    n_valid:int=200, # Of the other images, this many validate; the rest test
    pretrained:bool=True, # Start from `body` (else from scratch)
    classes:tuple=(5, 6, 7, 8, 9), # The digits to transfer to
    model:callable=digits_cnn, # `model(n_out)`, as `body` was pretrained (`pretrain_digits(model=...)`)
    size:int=8, # Image size, as `body` was pretrained
) -> dict:
    "Fine-tune on the digits `classes` with `fit`; validation loss and accuracy, test accuracy as they are and corrupted"
    set_seed(seed)
    model = model(len(classes))
    if pretrained: model.load_state_dict(body, strict=False)
    x,y = digits_data()
    trn,rest = target_split(n_shot, seed, classes)
    rest = rest[torch.randperm(len(rest), generator=torch.Generator().manual_seed(seed)).numpy()]
    val,tst = rest[:n_valid],rest[n_valid:]
    def lbl(i): return _labels(y[i], classes)
    learn = digits_learner(_dls(_resize(x[trn], size), lbl(trn), _resize(x[val], size), lbl(val), bs=16), model)
    out = fit(learn, epochs, lr)
    v_loss,v_acc = learn.validate()
    def acc(xs): return float(learn.validate(dl=TfmdDL(TensorDataset(_resize(xs, size), lbl(tst)), bs=512, device='cpu'))[1])
    ood = {k: acc(corrupt(x[tst], k, seed)) for k in CORRUPTIONS}
    return dict(valid_loss=float(v_loss), valid=float(v_acc), test=acc(x[tst]), ood=float(np.mean(list(ood.values()))),
                corrupted=ood, learn=learn, out=out)
