"""Small image folders made from scikit-learn's bundled 8x8 digits, for `vision_learner` examples that run offline on a CPU."""
from __future__ import annotations
import tempfile
from pathlib import Path
import numpy as np

__all__ = ['digit_images', 'digits_image_dls']

def digit_images(
    path:str|Path, # Folder to write into: one sub-folder per class
    n:int=300, # Images in all, drawn at random
    size:int=32, # Width and height in pixels (the 8x8 digits upscaled)
    classes:tuple=tuple(range(10)), # Digits to keep
    seed:int=0, # Which images are drawn
) -> Path:
    "Write `n` of scikit-learn's handwritten digits as RGB PNGs in `path/<digit>/`, for `ImageDataLoaders.from_folder`"
    from PIL import Image
    from sklearn.datasets import load_digits
    x,y = load_digits(return_X_y=True)
    keep = np.where(np.isin(y, classes))[0]
    idx = np.random.RandomState(seed).choice(keep, min(n, len(keep)), replace=False)
    path = Path(path)
    for i in idx:
        (path/str(y[i])).mkdir(parents=True, exist_ok=True)
        a = (255 - x[i].reshape(8, 8)*255/16).astype(np.uint8)  # dark strokes on white, as ink on paper
        Image.fromarray(a).resize((size, size), Image.BILINEAR).convert('RGB').save(path/str(y[i])/f'{i}.png')
    return path

def digits_image_dls(
    n:int=300, # Images in all; a fifth of them validate
    size:int=32, # Width and height in pixels
    bs:int=32, # Batch size
    seed:int=0, # Which images, and the validation split
    path:str|Path|None=None, # Where to write the images; `None`: a new temporary folder
    classes:tuple=tuple(range(10)), # Digits to keep
    **kwargs # Passed to `ImageDataLoaders.from_folder`
):
    "fastai `ImageDataLoaders` over `n` digit images: what `vision_learner` examples train on here, offline"
    from fastai.vision.all import ImageDataLoaders
    path = digit_images(path or tempfile.mkdtemp(prefix='digits_'), n=n, size=size, classes=classes, seed=seed)
    return ImageDataLoaders.from_folder(path, valid_pct=0.2, seed=seed, bs=bs, num_workers=0, device='cpu', **kwargs)
