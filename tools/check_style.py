#!/usr/bin/env python3
"""Lines that fit on a screen: fail if more than 2% of the library's lines (fastai_disclr/*.py, exported from nbs/) are
longer than 120 characters, as in fastai's callback modules (1.7%). Prints the share and the longest lines."""
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
LIMIT, SHARE = 120, 0.02

if __name__ == '__main__':
    lines = [(p.name, i+1, l) for p in sorted((root/'fastai_disclr').glob('*.py')) if p.name != '_modidx.py'
             for i,l in enumerate(p.read_text().splitlines())]
    long = [(n, i, len(l)) for n,i,l in lines if len(l) > LIMIT]
    share = len(long)/len(lines)
    msg = f'{len(long)} of {len(lines)} library lines ({share:.1%}) are over {LIMIT} characters'
    if share > SHARE:
        sys.exit(msg + f', more than {SHARE:.0%}; the longest:\n  ' + '\n  '.join(f'{n}:{i} ({k})' for n,i,k in sorted(long, key=lambda t: -t[2])[:15]))
    print(msg)
