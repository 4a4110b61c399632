"""Short labelled sentences made from VADER's human-rated words, for `text_classifier_learner` examples that run offline."""
from __future__ import annotations
import importlib
from pathlib import Path
import numpy as np

__all__ = ['vader_words', 'vader_sentences', 'vader_sentences_dls']

def _needs(mod:str):
    "Import `mod`, a package of the `examples` extra, or say how to install it"
    try: return importlib.import_module(mod)
    except ImportError as e: raise ImportError(
        f"fastai_disclr_examples needs `{mod}`, which fastai_disclr's `examples` extra installs: "
        "pip install 'fastai_disclr[examples]' (in a clone: pip install '.[examples]')") from e

def vader_words(
    min_abs:float=1.0, # Keep entries whose mean rating is at least this far from neutral
    alpha:bool=True, # Words (alphabetic entries); `False`: the other entries (emoticons such as ':-)' and '</3')
) -> list:
    "(entry, mean human rating) of VADER's lexicon, which ships with `vaderSentiment`: ratings from -4 to 4 by ten people"
    lexicon = Path(_needs('vaderSentiment').__file__).parent/'vader_lexicon.txt'
    rows = [l.split('\t') for l in lexicon.read_text(encoding='utf-8').splitlines()]
    return [(w, float(m)) for w,m,*_ in rows if w.isalpha() == alpha and abs(float(m)) >= min_abs]

def vader_sentences(
    n:int=240, # Sentences
    seed:int=0, # Which words
) -> list:
    "(sentence, 'pos' or 'neg') pairs: two rated words of the same polarity in a short review"
    words = vader_words()
    rng = np.random.RandomState(seed)
    pos,neg = [w for w,m in words if m > 0],[w for w,m in words if m < 0]
    out = []
    for i in range(n):
        ws,lab = (pos,'pos') if i % 2 else (neg,'neg')
        a,b = rng.choice(ws, 2, replace=False)
        out.append((f"the film was {a} and the acting {b}", lab))
    return out

def vader_sentences_dls(
    n:int=240, # Sentences; a fifth of them validate
    bs:int=16, # Batch size
    seed:int=0, # Which words, and the validation split
    path:str|Path='.', # Where fastai's tokenizer may write its files
):
    "fastai `TextDataLoaders` (spaCy tokens) over `vader_sentences`: what `text_classifier_learner` examples train on here"
    import pandas as pd
    from fastai.text.all import TextDataLoaders
    df = pd.DataFrame(vader_sentences(n, seed), columns=['text', 'label'])
    return TextDataLoaders.from_df(df, path=path, text_col='text', label_col='label', valid_pct=0.2, seed=seed, bs=bs,
                                   seq_len=16, device='cpu', num_workers=0)
