"""The callbacks on the learners fastai ships and on Hugging Face models, next to fastai's callbacks and methods, given to
the `Learner` and to `fit`.

Each case builds a tiny learner (CPU, no downloads), runs a three-stage recipe (head; last two groups; all) with
`GradualUnfreeze`, `DiscriminativeLR(ratio=2)` and `GroupDiagnostics`, and asserts what must hold: which groups trained
in which epoch, the per-group LRs, that frozen parameters did not move, and that the other callback or method kept its
effect. Then the plateau-driven stages on each learner, and the traps a second round of real use found (a `Recorder`
without its time column, a schedule written as a closure, norm layers with `train_bn` on and off, Hugging Face models
the splitter must split). The README's compatibility table lists what this file covers.
"""
import contextlib, io, random, warnings
import numpy as np, pandas as pd, pytest, torch
from torch import nn
from torch.utils.data import TensorDataset
from fastai.basics import Learner, DataLoaders, TfmdDL, CrossEntropyLossFlat, accuracy, load_learner, params, set_seed
from fastai.callback.progress import CSVLogger
from fastai.callback.hook import *  # Learner.summary
from fastai.callback.mixup import MixUp
from fastai.callback.schedule import ParamScheduler, SchedExp, SchedLin
from fastai.callback.tracker import SaveModelCallback, EarlyStoppingCallback, ReduceLROnPlateau
from fastai.callback.training import GradientAccumulation
from fastai.callback.core import Callback
from fastai.optimizer import ranger
from fastai.text.all import text_classifier_learner, AWD_LSTM, awd_lstm_clas_config
from fastai.vision.all import vision_learner
from fastai.tabular.all import TabularDataLoaders, tabular_learner, Categorify, Normalize, CategoryBlock
from torchvision.models import resnet18
import transformers as hf
from fastai_disclr.all import *
from fastai_disclr.test_utils import groups_learner, GroupProbe, quiet
from fastai_disclr_examples.text import vader_sentences_dls
from fastai_disclr_examples.vision import digits_image_dls

SCHEDULE = {0: -1, 1: -2, 2: 0}  # three stages: the head, the last two groups, all
N_EPOCH, LR, RATIO = 3, 1e-2, 2.


@pytest.fixture(autouse=True)
def quiet_warnings():
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        yield


# ---------------------------------------------------------------- the learners, tiny and offline
def _tabular_dls(tmp):
    rng = np.random.RandomState(0)
    df = pd.DataFrame({'a': rng.choice(list('xyz'), 96), 'x1': rng.randn(96), 'x2': rng.randn(96)})
    df['y'] = (df.x1 + (df.a == 'x') > 0.3).map({True: 'yes', False: 'no'})
    return TabularDataLoaders.from_df(df, path=tmp, y_names='y', y_block=CategoryBlock(), cat_names=['a'], cont_names=['x1', 'x2'],
                                      procs=[Categorify, Normalize], valid_idx=list(range(72, 96)), bs=12, device='cpu', num_workers=0)

def _token_dls(vocab=100, n=48, seq_len=8):
    "Random token ids and labels, the classes told apart by their first token"
    g = torch.Generator().manual_seed(0)
    x = torch.randint(3, vocab, (n, seq_len), generator=g)
    x[:, -1] = 1  # an end-of-sequence token: T5's classifier reads the encoding there
    y = (x[:, 0] > vocab//2).long()
    return DataLoaders(TfmdDL(TensorDataset(x[:36], y[:36]), bs=6, shuffle=True, num_workers=0),
                       TfmdDL(TensorDataset(x[36:], y[36:]), bs=12, num_workers=0), device='cpu')

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('data')
    return dict(text=vader_sentences_dls(n=48, bs=8, path=tmp/'text'), image=digits_image_dls(n=24, bs=6, path=tmp/'images', classes=(0, 1)),
                tabular=_tabular_dls(tmp/'tabular'), tokens=_token_dls())

def _text(data, **kw):
    cfg = awd_lstm_clas_config.copy() | dict(emb_sz=16, n_hid=24, n_layers=2)
    return text_classifier_learner(data['text'], AWD_LSTM, pretrained=False, config=cfg, metrics=accuracy, **kw)

def tabular_splitter(m):
    "Embeddings and the continuous inputs' BatchNorm, the hidden layers, the output layer"
    return [params(m.embeds) + params(m.bn_cont), params(m.layers[:-1]), params(m.layers[-1])]

class HFClassifier(nn.Module):
    "A Hugging Face model with a classification head, as a fastai model: token ids in, logits out"
    def __init__(self, model): super().__init__(); self.hf = model
    def forward(self, x): return self.hf(input_ids=x).logits

ENC = dict(vocab_size=100, hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32, num_labels=2)
HF_MODELS = {  # a model of each family, from a small config; the learner's number of layer groups
    'BERT encoder': (lambda: hf.BertForSequenceClassification(hf.BertConfig(**ENC)), 5),
    'DistilBERT encoder': (lambda: hf.DistilBertForSequenceClassification(hf.DistilBertConfig(
        vocab_size=100, dim=16, n_layers=3, n_heads=2, hidden_dim=32, num_labels=2)), 5),
    'GPT-2 decoder': (lambda: hf.GPT2ForSequenceClassification(hf.GPT2Config(
        vocab_size=100, n_embd=16, n_layer=3, n_head=2, num_labels=2, pad_token_id=0, bos_token_id=1, eos_token_id=2)), 5),
    'Llama decoder': (lambda: hf.LlamaForSequenceClassification(hf.LlamaConfig(**ENC, num_key_value_heads=2, pad_token_id=0)), 5),
    'T5 encoder-decoder': (lambda: hf.T5ForSequenceClassification(hf.T5Config(
        vocab_size=100, d_model=16, d_kv=8, d_ff=32, num_layers=3, num_decoder_layers=2, num_heads=2, num_labels=2,
        pad_token_id=0, decoder_start_token_id=0)), 1+3+2+1),
}

def _hf(name):
    def build(d, **kw):
        torch.manual_seed(0)
        return Learner(d['tokens'], HFClassifier(HF_MODELS[name][0]()), loss_func=CrossEntropyLossFlat(), metrics=accuracy,
                       splitter=layer_splitter, **kw)
    return build

LEARNERS = {  # name: (build(data, **kw), the learner's number of layer groups)
    'text_classifier_learner(AWD_LSTM)': (_text, 4),
    'vision_learner(torchvision resnet18)': (lambda d, **kw: vision_learner(d['image'], resnet18, pretrained=False, metrics=accuracy, **kw), 3),
    'vision_learner(timm resnet18, layer_splitter)': (
        lambda d, **kw: vision_learner(d['image'], 'resnet18', pretrained=False, splitter=layer_splitter, metrics=accuracy, **kw), 10),
    'tabular_learner': (lambda d, **kw: tabular_learner(d['tabular'], layers=[16, 8], splitter=tabular_splitter, metrics=accuracy, **kw), 3),
    'Learner(HF BERT encoder, layer_splitter)': (_hf('BERT encoder'), 5),
    'Learner(HF GPT-2 decoder, layer_splitter)': (_hf('GPT-2 decoder'), 5),
    'Learner(HF T5 encoder-decoder, layer_splitter)': (_hf('T5 encoder-decoder'), 7),
    'Learner(nn.Sequential)': (lambda d, **kw: groups_learner(n_groups=4, **kw), 4),
}
HF = [n for n in LEARNERS if 'HF' in n]

def recipe():
    return [GradualUnfreeze(SCHEDULE), DiscriminativeLR(ratio=RATIO), GroupDiagnostics(every=1)]

class Case:
    "A learner with the recipe's callbacks given to the `Learner` (`attach='learner'`) or to each `fit` (`attach='fit'`)"
    def __init__(self, name, data, attach, tmp, **kw):
        build, self.n = LEARNERS[name]
        self.cbs, self.attach = recipe(), attach
        set_seed(0)  # the same weights, dropout draws and batches for two cases of one learner
        self.learn = quiet(build(data, cbs=self.cbs if attach == 'learner' else None, path=tmp, **kw))
        for dl in self.learn.dls.loaders: dl.rng = random.Random(0)
    @property
    def gu(self): return self.cbs[0]
    @property
    def dlr(self): return self.cbs[1]
    @property
    def diag(self): return self.cbs[2]
    def fit(self, method='fit_one_cycle', *args, extra=(), **kw):
        "Call `learn.method(*args)` with a `GroupProbe` and `extra` callbacks, and the recipe's when given to `fit`"
        self.probe = GroupProbe(frozen=True)
        cbs = list(extra) + [self.probe] + (self.cbs if self.attach == 'fit' else [])
        with warnings.catch_warnings(record=True) as ws, contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter('always')
            getattr(self.learn, method)(*args, cbs=cbs, **kw)
        self.warnings = [str(w.message) for w in ws]
        return self.probe

    def check_recipe(self, p, epochs=N_EPOCH, lrs=None):
        "The recipe's stages, LRs and frozen-means-frozen, for its first `epochs` epochs"
        n = self.n
        first = [p.epochs.index(e) for e in sorted(set(p.epochs))]  # each epoch's first training batch
        frozen_idx = [n-1, n-2, 0][:epochs]
        assert [sum(p.trainable[i]) for i in first] == [n-k for k in frozen_idx], p.trainable
        assert p.frozen_moved == [0]*epochs, p.frozen_moved
        for e,i in enumerate(first):
            lr = np.array(p.lrs[i])
            if e == 0: np.testing.assert_allclose(lr, lr[-1], rtol=1e-9)  # the head stage: one LR for every group
            else: np.testing.assert_allclose(lr[1:]/lr[:-1], RATIO, rtol=1e-9)  # adjacent groups `ratio` apart
            if lrs is not None: np.testing.assert_allclose(lr[-1], lrs[e], rtol=1e-9)
        # the fit's table says how many groups each epoch trained
        assert [int(v[-1]) for v in self.learn.recorder.values] == [n-k for k in frozen_idx], self.learn.recorder.values
        # every group's activations recorded; frozen groups not moved, trainable ones moved
        assert self.diag.unhooked == [] and all(len(self.diag.act_stats(g)['mean']) for g in range(n)), self.diag.hooked
        u, tr = self.diag.updates, self.diag.trainable
        assert (u[~tr] == 0).all() and (u[tr] > 0).all()
        np.testing.assert_array_equal(self.diag.trainable, np.array(p.trainable)[self.diag.rec_iters])


ATTACH = ['learner', 'fit']
def cases(*names): return [pytest.param(n, a, id=f'{n}-{a}') for n in (names or LEARNERS) for a in ATTACH]


# ---------------------------------------------------------------- the recipe, with fastai's callbacks
@pytest.mark.parametrize('name,attach', cases())
def test_recipe(name, attach, data, tmp_path):
    c = Case(name, data, attach, tmp_path)
    p = c.fit('fit_one_cycle', N_EPOCH, LR)
    c.check_recipe(p)
    assert c.learn.opt.frozen_idx == 0
    assert c.gu.actual_schedule == SCHEDULE
    assert len(c.learn.validate()) == 1 + len(c.learn.metrics)  # the column is the fit's only, not `validate`'s

@pytest.mark.parametrize('name,attach', cases())
def test_save_model(name, attach, data, tmp_path):
    c = Case(name, data, attach, tmp_path)
    p = c.fit('fit_one_cycle', N_EPOCH, LR, extra=[SaveModelCallback(monitor='valid_loss', every_epoch=True, with_opt=True)])
    c.check_recipe(p)
    final = [p.detach().clone() for p in c.learn.model.parameters()]
    assert sorted(f.name for f in (tmp_path/'models').glob('*.pth')) == [f'model_{e}.pth' for e in range(N_EPOCH)]
    c.learn.load(f'model_{N_EPOCH-1}')
    assert all(torch.equal(p, q) for p, q in zip(c.learn.model.parameters(), final))

@pytest.mark.parametrize('name,attach', cases())
def test_early_stopping(name, attach, data, tmp_path):
    "EarlyStopping stops after epoch 1 (min_delta: no epoch after the first improves); the learner stays at stage 2, with a warning"
    c = Case(name, data, attach, tmp_path)
    p = c.fit('fit_one_cycle', N_EPOCH, LR, extra=[EarlyStoppingCallback(monitor='valid_loss', min_delta=1e9, patience=1)])
    c.check_recipe(p, epochs=2)
    assert c.learn.opt.frozen_idx == c.n-2
    assert any('still frozen' in m and 'learn.unfreeze()' in m for m in c.warnings), c.warnings

@pytest.mark.parametrize('name,attach', cases())
def test_reduce_lr_on_plateau(name, attach, data, tmp_path):
    "In a fit without a scheduler, ReduceLROnPlateau's division reaches every group, on top of the per-group spread"
    c = Case(name, data, attach, tmp_path)
    p = c.fit('fit', N_EPOCH, LR, extra=[ReduceLROnPlateau(monitor='valid_loss', min_delta=1e9, patience=1, factor=10)])
    c.check_recipe(p, lrs=[LR, LR, LR/10])

@pytest.mark.parametrize('name,attach', cases())
def test_gradient_accumulation(name, attach, data, tmp_path):
    "The recipe with GradientAccumulation over two batches: the optimizer steps once in two batches, the stages as without it"
    c = Case(name, data, attach, tmp_path)
    p = c.fit('fit_one_cycle', N_EPOCH, LR, extra=[GradientAccumulation(n_acc=2*c.learn.dls.train.bs)])
    c.check_recipe(p)
    assert len(p.lrs) >= 4 and len(p.step_lrs) == len(p.lrs)//2, (len(p.step_lrs), len(p.lrs))  # the probe sees the steps taken

class Inputs(Callback):
    "Each training batch's inputs as callbacks of order `order` see them"
    run_valid, run_range_test = False, False
    def __init__(self, order): self.order, self.xs = order, []
    def before_batch(self): self.xs.append(self.learn.xb[0].detach().clone())

# MixUp blends the inputs: images and plain tensors (token ids and categorical codes cannot be blended, with or without these callbacks)
@pytest.mark.parametrize('name,attach', cases('vision_learner(torchvision resnet18)', 'vision_learner(timm resnet18, layer_splitter)', 'Learner(nn.Sequential)'))
def test_mixup(name, attach, data, tmp_path):
    "The recipe with MixUp: every training batch's inputs are blended (MixUp ran), and the loss function is put back"
    c = Case(name, data, attach, tmp_path)
    mix, lf = MixUp(), c.learn.loss_func
    before, after = Inputs(MixUp.order-1), Inputs(MixUp.order+1)
    p = c.fit('fit_one_cycle', N_EPOCH, LR, extra=[mix, before, after])
    c.check_recipe(p)
    assert len(before.xs) == len(after.xs) == len(p.lrs)
    assert not any(torch.equal(a, b) for a, b in zip(before.xs, after.xs))  # MixUp blended each batch's inputs
    assert c.learn.loss_func is lf

@pytest.mark.parametrize('name,attach', cases())
def test_csv_logger(name, attach, data, tmp_path):
    "CSVLogger writes the fit's table, the trainable groups of each epoch included"
    c = Case(name, data, attach, tmp_path)
    p = c.fit('fit_one_cycle', N_EPOCH, LR, extra=[CSVLogger('log.csv')])
    c.check_recipe(p)
    log = pd.read_csv(tmp_path/'log.csv')
    assert list(log['epoch']) == list(range(N_EPOCH)) and list(log['trainable_groups']) == [1, 2, c.n]


# ---------------------------------------------------------------- fastai's methods
@pytest.mark.parametrize('name,attach', cases())
def test_summary_and_training_loop(name, attach, data, tmp_path, capsys):
    "Before and after the fit: no error, no change to the learner or the records"
    c = Case(name, data, attach, tmp_path)
    c.learn.summary(); c.learn.show_training_loop()
    assert c.learn.opt is None
    c.check_recipe(c.fit('fit_one_cycle', N_EPOCH, LR))
    lrs, ups, log = c.dlr.batch_lrs.copy(), c.diag.updates.copy(), list(c.gu.stage_log)
    c.learn.freeze_to(1)
    assert 'frozen up to parameter group #1' in str(c.learn.summary())  # (fastai's summary resets the Recorder's values)
    c.learn.show_training_loop()
    assert c.learn.opt.frozen_idx == 1
    np.testing.assert_array_equal(c.dlr.batch_lrs, lrs); np.testing.assert_array_equal(c.diag.updates, ups)
    assert c.gu.stage_log == log

@pytest.mark.parametrize('name,attach', cases())
def test_lr_find(name, attach, data, tmp_path):
    "lr_find runs its exponential LRs on the learner as it is, recorded by no callback of the package; the recipe then runs in full"
    c = Case(name, data, attach, tmp_path)
    with c.learn.added_cbs(c.cbs if attach == 'fit' else []):  # lr_find takes no `cbs`: added for its fit alone
        c.learn.lr_find(start_lr=1e-5, end_lr=1e-1, num_it=6, show_plot=False)
    assert c.learn.opt.frozen_idx == 0 and len(c.diag.rec_iters) == 0 and len(c.dlr.batch_lrs) == 0
    lrs = np.array(c.learn.recorder.lrs)
    np.testing.assert_allclose(lrs[1:]/lrs[:-1], (1e4)**(1/6), rtol=1e-6)
    c.check_recipe(c.fit('fit_one_cycle', N_EPOCH, LR))

@pytest.mark.parametrize('name,attach', cases())
def test_fine_tune(name, attach, data, tmp_path):
    """fine_tune is two fits, which fastai gives a callback no way to tell apart: attached to the learner, the recipes act
    in the first (the head alone, as fine_tune's own freeze) and sit out the second with one warning; given to
    fine_tune, they act in each of its fits, as in any fit they are given to"""
    c = Case(name, data, attach, tmp_path)
    p = c.fit('fine_tune', 1, 1e-3)
    said = [m for m in c.warnings if 'sit out this fit' in m]
    if attach == 'learner':
        assert [sum(t) for t in p.trainable[:1]] == [c.n], p.trainable  # the probe sees fine_tune's second fit: all groups
        assert len(said) == 1 and said[0].startswith('GradualUnfreeze and DiscriminativeLR sit out this fit'), c.warnings
        lr = np.array(p.lrs[0])
        np.testing.assert_allclose(lr[1:]/lr[:-1], 100**(1/(c.n-1)), rtol=1e-6)  # fine_tune's own slice(base_lr/100, base_lr)
    else:
        assert [sum(t) for t in p.trainable[:1]] == [1] and said == [], (p.trainable, c.warnings)  # the recipe's first stage
    assert c.diag.rec_iters[-1] == len(p.lrs) - 1  # the diagnostics, not a recipe, record fine_tune's fits (the second's last)

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
@pytest.mark.parametrize('name,attach', cases(*[n for n in LEARNERS if n != 'Learner(nn.Sequential)' and n not in HF]))
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
    p = c.fit('fit', 2, 1e-3)
    assert [sum(t) for t in p.trainable] == [c.n]*len(p.trainable)
    np.testing.assert_allclose(np.array(p.lrs), 1e-3, rtol=1e-9)
    np.testing.assert_array_equal(c.dlr.batch_lrs, lrs)
    assert any('sit out this fit' in m and 'it ran in an earlier one' in m for m in c.warnings), c.warnings
    assert 'trainable_groups' not in c.learn.recorder.metric_names  # nor a column: the plain fit's table is fastai's


# ---------------------------------------------------------------- stages that follow the validation loss, on every learner
@pytest.mark.parametrize('name', list(LEARNERS))
def test_plateau_stages_beside_save_model_and_early_stopping(name, data, tmp_path):
    """`ThawOnPlateau(patience=1)` with a `min_delta` no epoch meets: each stage ends after two epochs, restoring its best
    (its first); SaveModelCallback and EarlyStoppingCallback keep their own rules beside it"""
    c = Case(name, data, 'fit', tmp_path)
    c.cbs[0] = gu = GradualUnfreeze({0: -1, 3: -2, 6: 0})
    tp = ThawOnPlateau(patience=1, min_delta=1e9, restore_best=True)
    save = SaveModelCallback(monitor='valid_loss', fname='best')
    p = c.fit('fit_one_cycle', 6, LR, extra=[tp, save, EarlyStoppingCallback(monitor='valid_loss', patience=6)])
    assert [(s['epoch'], s['why']) for s in gu.stage_log] == [(0, 'start'), (2, 'plateau'), (4, 'plateau')]
    assert [t['restored'] for t in tp.log] == [0, 2, 4]
    assert gu.actual_schedule == {0: -1, 2: -2, 4: 0}
    assert [int(v[-1]) for v in c.learn.recorder.values] == [1, 1, 2, 2, c.n, c.n]
    assert p.frozen_moved == [0]*6
    assert (tmp_path/'models'/'best.pth').exists()

@pytest.mark.parametrize('add_time', [True, False])
@pytest.mark.parametrize('metrics,monitor', [(accuracy, 'accuracy'), (None, 'valid_loss')], ids=['accuracy', 'valid_loss'])
def test_plateau_monitor_without_a_time_column(add_time, metrics, monitor, data, tmp_path):
    "A monitored value is found by its name whether or not the Recorder keeps a time column (`Recorder(add_time=False)`)"
    learn = quiet(tabular_learner(data['tabular'], layers=[16, 8], splitter=tabular_splitter, metrics=metrics, path=tmp_path))
    learn.recorder.add_time = add_time
    gu, tp = GradualUnfreeze({0: -1, 2: 0}), ThawOnPlateau(patience=1, monitor=monitor)
    with contextlib.redirect_stdout(io.StringIO()): learn.fit_one_cycle(3, 1e-2, cbs=[gu, tp])
    names = list(learn.recorder.metric_names)
    assert ('time' in names) == add_time and names.index('trainable_groups') == len(names) - 1 - add_time
    k = names[1:].index(monitor)
    assert [t['values'] for t in tp.log] == [[v[k] for v in learn.recorder.values][s['epoch']:e] for s,e in
                                             zip(gu.stage_log, [s['epoch'] for s in gu.stage_log[1:]] + [3])]


# ---------------------------------------------------------------- the traps of real use
def test_schedule_written_as_a_closure_is_rescaled_to_its_true_peak():
    "A user's warm-up written as a closure over fastai's annealer: every group peaks where DiscriminativeLR puts it"
    def make():
        decay = SchedExp(1e-3, 1e-5)
        return lambda p: min(1., p/0.05) * decay(p)
    warm = make()
    learn, probe = groups_learner(n_groups=3), GroupProbe()
    learn.fit(3, cbs=[ParamScheduler({'lr': warm}), DiscriminativeLR(2e-3, ratio=2), probe])
    n = len(probe.lrs)
    np.testing.assert_allclose(np.array(probe.lrs), np.outer([2e-3*warm(i/n)/warm(0.05) for i in range(n)], [0.25, 0.5, 1]), rtol=1e-9)

@pytest.mark.parametrize('train_bn', [True, False])
def test_norm_layers_of_frozen_groups(train_bn, data, tmp_path):
    "With `train_bn` the BatchNorm of frozen groups trains; either way the group counts as frozen, and its frozen weights do not move"
    learn = quiet(vision_learner(data['image'], resnet18, pretrained=False, train_bn=train_bn, path=tmp_path))
    diag, probe = GroupDiagnostics(every=1), GroupProbe(frozen=True)
    bn = learn.model[0][1]  # the stem's BatchNorm, in group 0, frozen until the last stage
    w0 = bn.weight.detach().clone()
    learn.fit_one_cycle(3, 1e-3, cbs=[GradualUnfreeze(SCHEDULE), DiscriminativeLR(), diag, probe, moved := GroupProbe(weights=True)])
    n_iter = len(learn.dls.train)
    assert list(diag.trainable.sum(1)[::n_iter]) == [1, 2, 3] and probe.frozen_moved == [0, 0, 0]
    u, tr = diag.updates, diag.trainable
    assert (u[~tr] == 0).all() and (u[tr] > 0).all()  # the weights the stages froze did not move, whatever the norm layers did
    # group 0 in epoch 0: frozen, yet its BatchNorm trains with `train_bn=True` (its weights change), and not without
    assert (not torch.equal(moved.start[0][0], moved.end[0][0])) == train_bn
    assert not torch.equal(bn.weight.detach(), w0)  # the last stage trained the whole group

@pytest.mark.parametrize('name', list(HF_MODELS))
def test_hugging_face_families_split_into_blocks(name):
    "layer_splitter on each family, bare and inside a plain module: embeddings, each block, head; every parameter once"
    model, n = HF_MODELS[name][0](), HF_MODELS[name][1]
    for m in [model, HFClassifier(model)]:
        groups = layer_splitter(m)
        assert len(groups) == n, (name, [len(g) for g in groups])
        assert sorted(id(p) for g in groups for p in g) == sorted(id(p) for p in m.parameters())

def test_single_group_error_suggests_what_works_for_the_model(data, tmp_path):
    "tabular_learner keeps one group: the error suggests `layer_splitter`, which works, not an indexing splitter that cannot"
    learn = quiet(tabular_learner(data['tabular'], layers=[16, 8], path=tmp_path))
    with pytest.raises(ValueError, match='`splitter=layer_splitter` splits this TabularModel into'):
        learn.fit(1, cbs=GradualUnfreeze())
    learn = quiet(tabular_learner(data['tabular'], layers=[16, 8], path=tmp_path, splitter=layer_splitter))
    learn.fit(2, cbs=GradualUnfreeze({0: -1, 1: 0}))
    assert learn.opt.frozen_idx == 0
    wrapped = Learner(data['tokens'], nn.Sequential(nn.Embedding(100, 4), nn.Flatten(), nn.Linear(32, 2)), splitter=layer_splitter,
                      loss_func=CrossEntropyLossFlat())
    wrapped.model = nn.Sequential(wrapped.model)  # one top-level module: nothing layer_splitter can split
    with pytest.raises(ValueError, match='layer_splitter finds a single layer group in this Sequential'):
        quiet(wrapped).fit(1, cbs=GradualUnfreeze())


# ---------------------------------------------------------------- the one call choosing its own LRs, on every learner
FINDER = LRRangeTest(num_it=12)  # short tests: what is tested is that they leave no trace, not how good their picks are

@pytest.mark.parametrize('name', list(LEARNERS))
@pytest.mark.parametrize('ratio', [RATIO, 'grad'], ids=['ratio', 'grad'])
def test_found_lrs_leave_no_trace(name, ratio, data, tmp_path):
    """`DiscriminativeLR('find')` at each of the three stages runs one range test, at the first, over every group the last trains:
    the fit trains to the last bit as the same fit given its pick at every stage, so the test changed no weight, buffer,
    optimizer state, trainable group, data order or schedule position; the pick is every stage's top LR, the fit's table and
    records are its own batches'"""
    def fit(lrs):
        c = Case(name, data, 'fit', tmp_path)
        c.cbs[1] = DiscriminativeLR(lrs, ratio=ratio, finder=FINDER)
        p = c.fit('fit_one_cycle', N_EPOCH)
        return c, p, [t.detach().clone() for t in c.learn.model.state_dict().values()]
    c, p, w = fit(['find']*3)
    picks = [c.cbs[1].found[0]['lr']]*3
    assert [(r['stage'], r['groups_from']) for r in c.cbs[1].found] == [(0, 0)] and c.cbs[1].found[0]['batches'] <= 12
    c2, p2, w2 = fit(picks)
    assert all(torch.equal(a, b) for a, b in zip(w, w2)), name
    np.testing.assert_array_equal(np.array(p.lrs), np.array(p2.lrs))
    assert c.learn.recorder.values == c2.learn.recorder.values and len(p.lrs) == N_EPOCH*len(c.learn.dls.train)
    assert [int(v[-1]) for v in c.learn.recorder.values] == [1, 2, c.n]
    for i, top in enumerate(picks): np.testing.assert_allclose(c.cbs[1].stage_lrs[i][-1], top, rtol=1e-9)
    if ratio == 'grad':
        assert c.cbs[1].ratio.log and all(len(m) == c.n for _, m in c.cbs[1].ratio.log)
        assert (np.array(p.lrs)[-1, :-1] != np.array(p.lrs)[-1, -1]).any()  # the last stage spread by the gradients


# ---------------------------------------------------------------- round 3: fastai's optimizers, accumulation, a slice given to the fit
@pytest.mark.parametrize('name', list(LEARNERS))
def test_found_lrs_leave_no_trace_with_ranger(name, data, tmp_path):
    "With fastai's `ranger` (Lookahead keeps a step count and slow weights beside the state), 'find' leaves no trace"
    def fit(lrs):
        c = Case(name, data, 'fit', tmp_path, opt_func=ranger)
        c.cbs = [GradualUnfreeze({0: -1, 2: 0}), DiscriminativeLR(lrs, ratio=1, finder=LRRangeTest(num_it=13)), GroupDiagnostics()]
        c.fit('fit_one_cycle', 4)
        return c
    found = fit(['find', 'find'])
    given = fit([found.dlr.found[0]['lr']]*2)
    # Lookahead's step count: the fit's own steps since the last stage began (`freeze_to` clears the optimizer's state)
    assert found.learn.opt.count == given.learn.opt.count == sum(e >= 2 for e in found.probe.epochs) > 0
    for a, b in zip(found.learn.model.parameters(), given.learn.model.parameters()): assert torch.equal(a, b)

class Steps(Callback):
    "The training batches at which the optimizer steps (`before_step` runs after GradientAccumulation let the step through)"
    order, run_valid, run_range_test = 90, False, False
    def before_fit(self): self.iters = []
    def before_step(self): self.iters.append(self.learn.train_iter)

@pytest.mark.parametrize('every', [2, 3])
@pytest.mark.parametrize('name', list(LEARNERS))
def test_gradient_spread_measures_once_in_every_batches_with_accumulation(name, every, data, tmp_path):
    """`ratio='grad'` with GradientAccumulation over two batches measures at each stage's first step and once in `every`
    training batches: at the first step at or after each `every`-th batch"""
    c = Case(name, data, 'fit', tmp_path)
    c.cbs = [GradualUnfreeze({0: -1, 1: 0}), DiscriminativeLR(LR, ratio=GradSpread(every=every)), GroupDiagnostics()]
    steps = Steps()
    c.fit('fit_one_cycle', N_EPOCH, extra=[GradientAccumulation(n_acc=2*c.learn.dls.train.bs), steps])
    its = steps.iters
    assert len(its) >= 4 and its == list(range(1, 2*len(its), 2))  # a step in two batches
    stage_starts = [c.probe.epochs.index(st['epoch']) for st in c.gu.stage_log]  # each stage's first batch
    expected = {next(i for i in its if i >= k) for k in range(0, its[-1]+1, every)} | {next(i for i in its if i >= s) for s in stage_starts}
    assert [b for b, _ in c.dlr.ratio.log] == sorted(expected), (c.dlr.ratio.log, its)

@pytest.mark.parametrize('name', list(LEARNERS))
@pytest.mark.parametrize('ratio', ['grad', SchedLin(1, 3)], ids=['grad', 'schedule'])
def test_a_spread_with_a_slice_given_to_the_fit_is_refused_before_any_change(name, ratio, data, tmp_path):
    "A per-batch spread (`ratio='grad'` or a schedule) and a slice given to the fit: one rule, refused before any weight changes"
    c = Case(name, data, 'fit', tmp_path)
    c.cbs = [DiscriminativeLR(ratio=ratio)]
    w0 = [p.detach().clone() for p in c.learn.model.parameters()]
    with pytest.raises(ValueError, match='fixes a spread of its own: give one of them'):
        c.fit('fit_one_cycle', 1, slice(1e-4, 1e-2))
    assert all(torch.equal(a, b) for a, b in zip(w0, c.learn.model.parameters()))
    with pytest.raises(ValueError, match='fixes a spread of its own: give one of them'): DiscriminativeLR(slice(1e-4, 1e-2), ratio=ratio)

def test_range_test_shows_a_progress_bar_as_fastai_does(monkeypatch, data, tmp_path):
    "A learner that shows fastai's progress bar shows the range test's own bar too (one a fit), saying what runs and how long"
    import fastai.callback.progress as fastai_progress
    shown = []
    class Bar(fastai_progress.progress_bar):
        def __init__(self, *args, **kw): super().__init__(*args, **kw); shown.append(self)
    monkeypatch.setattr(fastai_progress, 'progress_bar', Bar)
    learn = groups_learner(n_groups=3, show=True)
    with contextlib.redirect_stdout(io.StringIO()):
        learn.fit_one_cycle(2, cbs=[GradualUnfreeze({0: -1, 1: 0}), DiscriminativeLR('find', finder=LRRangeTest(num_it=13))])
    assert [b.comment for b in shown if 'range test' in str(b.comment)] == ['LR range test: 13 batches at most']
    quiet(learn).fit_one_cycle(1, cbs=DiscriminativeLR('find', finder=LRRangeTest(num_it=13)))  # no bar where the fit shows none
    assert sum('range test' in str(b.comment) for b in shown) == 1
