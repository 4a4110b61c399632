#!/usr/bin/env python3
"""Tidy the outputs `nbdev-test --save` stored in nbs/*.ipynb, as a reader's Jupyter would show them: fastprogress's bar
frames dropped (nbdev's kernel keeps every update of a display; Jupyter shows the last, fastai's epoch table), the
table kept as HTML only (its Markdown copy is an HTML code block), and stderr (warnings with the machine's paths) dropped.
`make nbs` runs it after executing the notebooks."""
import json, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent

def _text(v): return ''.join(v) if isinstance(v, list) else str(v)

def tidy(nb: dict) -> dict:
    for c in nb['cells']:
        if c['cell_type'] != 'code': continue
        outs = []
        for o in c.get('outputs', []):
            if o.get('name') == 'stderr': continue
            html = _text(o.get('data', {}).get('text/html', ''))
            if '<progress' in html or (html.lstrip().startswith('<style>') and 'progress' in html): continue
            if o.get('output_type') == 'display_data' and 'text/html' in o.get('data', {}) and not html.strip(): continue  # a closed bar
            if 'class="fastprogress"' in html: o['data'] = {k: v for k,v in o['data'].items() if k != 'text/markdown'}
            outs.append(o)
        c['outputs'] = outs
    return nb

if __name__ == '__main__':
    for p in [Path(a) for a in sys.argv[1:]] or sorted((root/'nbs').glob('*.ipynb')):
        nb = json.loads(p.read_text())
        p.write_text(json.dumps(tidy(nb), indent=1, ensure_ascii=False) + '\n')
