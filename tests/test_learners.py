"""The callbacks on the learners fastai ships, next to fastai's callbacks and methods, given to the `Learner` and to `fit`.

Each case builds a tiny learner (CPU, no downloads), runs a three-stage recipe (head; last two groups; all) with
`GradualUnfreeze`, `DiscriminativeLR(ratio=2)` and `GroupDiagnostics`, and asserts what must hold: which groups trained
in which epoch, the per-group LRs, that frozen parameters did not move, and that the other callback or method kept its
effect. The README's compatibility table lists what this file covers.
"""
import warnings
import numpy as np, pandas as pd, pytest, torch
from PIL import Image
from fastai.basics import Callback, accuracy, load_learner, noop, params
from fastai.callback.progress import CSVLogger
from fastai.callback.hook import *  # Learner.summary
from fastai.callback.mixup import MixUp
from fastai.callback.progress import ProgressCallback
from fastai.callback.tracker import SaveModelCallback, EarlyStoppingCallback, ReduceLROnPlateau
from fastai.callback.training import GradientAccumulation
from fastai.text.all import TextDataLoaders, text_classifier_learner, AWD_LSTM, awd_lstm_clas_config
from fastai.vision.all import ImageDataLoaders, vision_learner, Resize
from fastai.tabular.all import TabularDataLoaders, tabular_learner, Categorify, Normalize, CategoryBlock
from torchvision.models import resnet18
from fastai_disclr.all import *
from fastai_disclr.test_utils import groups_learner

SCHEDULE = {0: -1, 1: -2, 2: 0}  # three stages: the head, the last two groups, all
N_EPOCH, LR, RATIO = 3, 1e-2, 2.


@pytest.fixture(autouse=True)
def quiet():
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        yield


# ---------------------------------------------------------------- the learners, tiny and offline
def _text_dls(tmp):
    rng = np.random.RandomState(0)
    pos, neg = 'good great fine nice superb lovely'.split(), 'bad awful poor nasty dreadful grim'.split()
    rows = [(' '.join(rng.choice(pos if y else neg, 6)) + ' film', 'pos' if y else 'neg') for y in [0, 1]*24]
    df = pd.DataFrame(rows, columns=['text', 'label'])
    return TextDataLoaders.from_df(df, path=tmp, text_col='text', label_col='label', valid_pct=0.25, seed=0, bs=8,
                                   seq_len=8, device='cpu', num_workers=0)

def _image_dls(tmp):
    rng = np.random.RandomState(0)
    for c, base in [('dark', 40), ('light', 200)]:
        (tmp/c).mkdir(parents=True, exist_ok=True)
        for i in range(12):
            a = np.clip(base + rng.randint(-30, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(tmp/c/f'{i}.png')
    return ImageDataLoaders.from_folder(tmp, valid_pct=0.25, seed=0, item_tfms=Resize(32), bs=6, num_workers=0, device='cpu')

def _tabular_dls(tmp):
    rng = np.random.RandomState(0)
    df = pd.DataFrame({'a': rng.choice(list('xyz'), 96), 'x1': rng.randn(96), 'x2': rng.randn(96)})
    df['y'] = (df.x1 + (df.a == 'x') > 0.3).map({True: 'yes', False: 'no'})
    return TabularDataLoaders.from_df(df, path=tmp, y_names='y', y_block=CategoryBlock(), cat_names=['a'], cont_names=['x1', 'x2'],
                                      procs=[Categorify, Normalize], valid_idx=list(range(72, 96)), bs=12, device='cpu', num_workers=0)

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('data')
    return dict(text=_text_dls(tmp/'text'), image=_image_dls(tmp/'images'), tabular=_tabular_dls(tmp/'tabular'))

def _text(data, **kw):
    cfg = awd_lstm_clas_config.copy() | dict(emb_sz=16, n_hid=24, n_layers=2)
    return text_classifier_learner(data['text'], AWD_LSTM, pretrained=False, config=cfg, metrics=accuracy, **kw)

def tabular_splitter(m):
    "Embeddings and the continuous inputs' BatchNorm, the hidden layers, the output layer"
    return [params(m.embeds) + params(m.bn_cont), params(m.layers[:-1]), params(m.layers[-1])]

LEARNERS = {  # name: (build(data, **kw), the learner's number of layer groups)
    'text_classifier_learner(AWD_LSTM)': (_text, 4),
    'vision_learner(torchvision resnet18)': (lambda d, **kw: vision_learner(d['image'], resnet18, pretrained=False, metrics=accuracy, **kw), 3),
    'vision_learner(timm resnet18, layer_splitter)': (
        lambda d, **kw: vision_learner(d['image'], 'resnet18', pretrained=False, splitter=layer_splitter, metrics=accuracy, **kw), 10),
    'tabular_learner': (lambda d, **kw: tabular_learner(d['tabular'], layers=[16, 8], splitter=tabular_splitter, metrics=accuracy, **kw), 3),
    'Learner(nn.Sequential)': (lambda d, **kw: groups_learner(n_groups=4, **kw), 4),
}


# ---------------------------------------------------------------- what a case records
class Watch(Callback):
    "Per training epoch: trainable groups, each group's LR at the first batch, and how many frozen parameters moved"
    order, run_valid = 95, False
    def before_fit(self): self.trainable, self.lrs, self.frozen_moved = [], [], []
    def before_train(self):
        pl = self.opt.param_lists
        self.trainable.append([all(p.requires_grad for p in g) for g in pl])  # a frozen group may train its norm layers (`train_bn`)
        self.frozen = [(p, p.detach().clone()) for g in pl for p in g if not p.requires_grad]
        self.first = True
    def before_batch(self):
        if self.first: self.lrs.append(np.array([h['lr'] for h in self.opt.hypers])); self.first = False
    def after_train(self): self.frozen_moved.append(sum(not torch.equal(p, p0) for p, p0 in self.frozen))

def recipe():
    return [GradualUnfreeze(SCHEDULE), DiscriminativeLR(ratio=RATIO), GroupDiagnostics(every=1)]

class Case:
    "A learner with the recipe's callbacks given to the `Learner` (`attach='learner'`) or to each `fit` (`attach='fit'`)"
    def __init__(self, name, data, attach, tmp, **kw):
        build, self.n = LEARNERS[name]
        self.cbs, self.attach = recipe(), attach
        self.learn = build(data, cbs=self.cbs if attach == 'learner' else None, path=tmp, **kw)
        self.learn.remove_cb(ProgressCallback)
        self.learn.logger = noop
    @property
    def gu(self): return self.cbs[0]
    @property
    def dlr(self): return self.cbs[1]
    @property
    def diag(self): return self.cbs[2]
    def fit(self, method='fit_one_cycle', *args, extra=(), **kw):
        "Call `learn.method(*args)` with a `Watch` and `extra` callbacks, and the recipe's when given to `fit`"
        self.watch = Watch()
        cbs = list(extra) + [self.watch] + (self.cbs if self.attach == 'fit' else [])
        with warnings.catch_warnings(record=True) as ws:
            warnings.simplefilter('always')
            getattr(self.learn, method)(*args, cbs=cbs, **kw)
        self.warnings = [str(w.message) for w in ws]
        return self.watch

    def check_recipe(self, w, epochs=N_EPOCH, lrs=None):
        "The recipe's stages, LRs and frozen-means-frozen, for its first `epochs` epochs"
        n = self.n
        frozen_idx = [n-1, n-2, 0][:epochs]
        assert [sum(t) for t in w.trainable] == [n-k for k in frozen_idx], w.trainable
        assert w.frozen_moved == [0]*epochs, w.frozen_moved
        for e, lr in enumerate(w.lrs):
            if e == 0: np.testing.assert_allclose(lr, lr[-1], rtol=1e-9)  # the head stage: one LR for every group
            else: np.testing.assert_allclose(lr[1:]/lr[:-1], RATIO, rtol=1e-9)  # adjacent groups `ratio` apart
            if lrs is not None: np.testing.assert_allclose(lr[-1], lrs[e], rtol=1e-9)
        # every group's activations recorded, frozen groups not moved, the last stage moved them all
        assert self.diag.unhooked == [] and all(len(self.diag.act_stats(g)['mean']) for g in range(n)), self.diag.hooked
        u, tr = self.diag.updates, self.diag.trainable[self.diag.rec_iters]
        assert (u[~tr] == 0).all() and (u[tr] > 0).all()


ATTACH = ['learner', 'fit']
def cases(*names): return [pytest.param(n, a, id=f'{n}-{a}') for n in (names or LEARNERS) for a in ATTACH]


# ---------------------------------------------------------------- the recipe, with fastai's callbacks
@pytest.mark.parametrize('name,attach', cases())
def test_recipe(name, attach, data, tmp_path):
    c = Case(name, data, attach, tmp_path)
    w = c.fit('fit_one_cycle', N_EPOCH, LR)
    c.check_recipe(w)
    assert c.learn.opt.frozen_idx == 0

@pytest.mark.parametrize('name,attach', cases())
def test_save_model(name, attach, data, tmp_path):
    c = Case(name, data, attach, tmp_path)
    w = c.fit('fit_one_cycle', N_EPOCH, LR, extra=[SaveModelCallback(monitor='valid_loss', every_epoch=True, with_opt=True)])
    c.check_recipe(w)
    final = [p.detach().clone() for p in c.learn.model.parameters()]
    assert sorted(f.name for f in (tmp_path/'models').glob('*.pth')) == [f'model_{e}.pth' for e in range(N_EPOCH)]
    c.learn.load(f'model_{N_EPOCH-1}')
    assert all(torch.equal(p, q) for p, q in zip(c.learn.model.parameters(), final))

@pytest.mark.parametrize('name,attach', cases())
def test_early_stopping(name, attach, data, tmp_path):
    "EarlyStopping stops after epoch 1 (min_delta: no epoch after the first improves); the learner stays at stage 2, with a warning"
    c = Case(name, data, attach, tmp_path)
    w = c.fit('fit_one_cycle', N_EPOCH, LR, extra=[EarlyStoppingCallback(monitor='valid_loss', min_delta=1e9, patience=1)])
    c.check_recipe(w, epochs=2)
    assert c.learn.opt.frozen_idx == c.n-2
    assert any('still frozen' in m and 'learn.unfreeze()' in m for m in c.warnings), c.warnings

@pytest.mark.parametrize('name,attach', cases())
def test_reduce_lr_on_plateau(name, attach, data, tmp_path):
    "In a fit without a scheduler, ReduceLROnPlateau's division reaches every group, on top of the per-group spread"
    c = Case(name, data, attach, tmp_path)
    w = c.fit('fit', N_EPOCH, LR, extra=[ReduceLROnPlateau(monitor='valid_loss', min_delta=1e9, patience=1, factor=10)])
    c.check_recipe(w, lrs=[LR, LR, LR/10])

@pytest.mark.parametrize('name,attach', cases())
def test_gradient_accumulation(name, attach, data, tmp_path):
    c = Case(name, data, attach, tmp_path)
    w = c.fit('fit_one_cycle', N_EPOCH, LR, extra=[GradientAccumulation(n_acc=2*c.learn.dls.train.bs)])
    c.check_recipe(w)

# MixUp blends the inputs: images and plain tensors (token ids and categorical codes cannot be blended, with or without these callbacks)
@pytest.mark.parametrize('name,attach', cases('vision_learner(torchvision resnet18)', 'vision_learner(timm resnet18, layer_splitter)', 'Learner(nn.Sequential)'))
def test_mixup(name, attach, data, tmp_path):
    c = Case(name, data, attach, tmp_path)
    mix, lf = MixUp(), c.learn.loss_func
    w = c.fit('fit_one_cycle', N_EPOCH, LR, extra=[mix])
    c.check_recipe(w)
    assert hasattr(mix, 'lam') and c.learn.loss_func is lf  # MixUp mixed, and put the loss back

@pytest.mark.parametrize('name,attach', cases())
def test_csv_logger(name, attach, data, tmp_path):
    c = Case(name, data, attach, tmp_path)
    w = c.fit('fit_one_cycle', N_EPOCH, LR, extra=[CSVLogger('log.csv')])
    c.check_recipe(w)
    assert list(pd.read_csv(tmp_path/'log.csv')['epoch']) == list(range(N_EPOCH))


# ---------------------------------------------------------------- fastai's methods
@pytest.mark.parametrize('name,attach', cases())
def test_summary_and_training_loop(name, attach, data, tmp_path, capsys):
    "Before and after the fit: no error, no change to the learner or the records"
    c = Case(name, data, attach, tmp_path)
    c.learn.summary(); c.learn.show_training_loop()
    assert c.learn.opt is None
    w = c.fit('fit_one_cycle', N_EPOCH, LR)
    lrs, ups = c.dlr.batch_lrs.copy(), c.diag.updates.copy()
    c.learn.freeze_to(1)
    assert 'frozen up to parameter group #1' in str(c.learn.summary())
    c.learn.show_training_loop()
    assert c.learn.opt.frozen_idx == 1
    np.testing.assert_array_equal(c.dlr.batch_lrs, lrs); np.testing.assert_array_equal(c.diag.updates, ups)
    c.check_recipe(w)

@pytest.mark.parametrize('name,attach', cases())
def test_lr_find(name, attach, data, tmp_path):
    "lr_find runs its exponential LRs on the learner as it is; the recipe then runs in full in the next fit"
    c = Case(name, data, attach, tmp_path)
    with c.learn.added_cbs(c.cbs if attach == 'fit' else []):  # lr_find takes no `cbs`: added for its fit alone
        c.learn.lr_find(start_lr=1e-5, end_lr=1e-1, num_it=6, show_plot=False)
    assert c.learn.opt.frozen_idx == 0
    lrs = np.array(c.learn.recorder.lrs)
    np.testing.assert_allclose(lrs[1:]/lrs[:-1], (1e4)**(1/6), rtol=1e-6)
    c.check_recipe(c.fit('fit_one_cycle', N_EPOCH, LR))

@pytest.mark.parametrize('name,attach', cases())
def test_fine_tune(name, attach, data, tmp_path):
    "fine_tune is fastai's own recipe: the callbacks sit it out with a warning, and it trains as without them"
    c = Case(name, data, attach, tmp_path)
    w = c.fit('fine_tune', 1, 1e-3)
    assert [sum(t) for t in w.trainable] == [c.n], w.trainable  # the probe sees fine_tune's second fit: all groups
    assert any('sits out this fit: `fine_tune`' in m for m in c.warnings), c.warnings
    lr = w.lrs[0]
    np.testing.assert_allclose(lr[1:]/lr[:-1], 100**(1/(c.n-1)), rtol=1e-6)  # fine_tune's own slice(base_lr/100, base_lr)

@pytest.mark.parametrize('name,attach', cases())
def test_preds_and_validate(name, attach, data, tmp_path):
    "get_preds and validate after the recipe: the learner, its freeze state and the records unchanged"
    c = Case(name, data, attach, tmp_path)
    c.fit('fit_one_cycle', N_EPOCH, LR)
    lrs, ups, w0 = c.dlr.batch_lrs.copy(), c.diag.updates.copy(), [p.detach().clone() for p in c.learn.model.parameters()]
    preds, targs = c.learn.get_preds()
    assert len(preds) == len(c.learn.dls.valid.dataset)
    c.learn.validate()
    np.testing.assert_array_equal(c.dlr.batch_lrs, lrs); np.testing.assert_array_equal(c.diag.updates, ups)
    assert all(torch.equal(p, q) for p, q in zip(c.learn.model.parameters(), w0)) and c.learn.opt.frozen_idx == 0

# fastai's `export` empties the DataLoaders' datasets (`new_empty`), which a plain `TensorDataset` does not have
@pytest.mark.parametrize('name,attach', cases(*[n for n in LEARNERS if n != 'Learner(nn.Sequential)']))
def test_export_load_learner(name, attach, data, tmp_path):
    "export after the recipe (with the callbacks attached, too) and load_learner: the same predictions"
    c = Case(name, data, attach, tmp_path)
    c.fit('fit_one_cycle', N_EPOCH, LR)
    preds, _ = c.learn.get_preds()
    c.learn.export(tmp_path/'export.pkl')
    learn2 = load_learner(tmp_path/'export.pkl')
    preds2, _ = learn2.get_preds(dl=c.learn.dls.valid)
    torch.testing.assert_close(preds2, preds)
    if attach == 'learner': assert isinstance(learn2.gradual_unfreeze, GradualUnfreeze)


# ---------------------------------------------------------------- attached to the learner: one recipe, then plain fits
@pytest.mark.parametrize('name', list(LEARNERS))
def test_attached_then_more_epochs(name, data, tmp_path):
    "Attached to the learner: a later fit trains the learner as the recipe left it, at the fit's own LR, with a warning"
    c = Case(name, data, 'learner', tmp_path)
    c.check_recipe(c.fit('fit_one_cycle', N_EPOCH, LR))
    lrs = c.dlr.batch_lrs.copy()
    w = c.fit('fit', 2, 1e-3)
    assert [sum(t) for t in w.trainable] == [c.n, c.n]
    np.testing.assert_allclose(np.array(w.lrs), 1e-3, rtol=1e-9)
    np.testing.assert_array_equal(c.dlr.batch_lrs, lrs)
    assert any('ran its recipe in an earlier fit' in m for m in c.warnings), c.warnings
