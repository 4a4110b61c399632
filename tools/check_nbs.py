#!/usr/bin/env python3
"""Check that the notebooks in nbs/ are stored executed, as documentation: every cell that draws a figure has a PNG,
every `show_doc` cell and every result table (`# readme: NAME` cells) has its Markdown, and no output is progress-bar
noise or oversized. `make nbs` re-executes the notebooks in place; `make test` runs this check.
"""
import json, re, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
PLOT = re.compile(r'\bplot_\w+\(|\bplt\.subplots\(|\bdisplay\(Image\(')
MAX_IMAGE, MAX_NB = 150_000, 1_500_000  # bytes of base64 PNG per image, bytes per notebook

def problems(path: Path) -> list:
    nb, out = json.loads(path.read_text()), []
    for i, c in enumerate(nb['cells']):
        if c['cell_type'] != 'code': continue
        src = ''.join(c['source'])
        if re.search(r'^#\|\s*(hide|export|eval:\s*false)', src, re.M) and 'show_doc' not in src: continue  # not shown, or definitions
        kinds = {k for o in c.get('outputs', []) for k in o.get('data', {})}
        texts = ''.join(t for o in c.get('outputs', []) for t in o.get('text', []))
        first = src.splitlines()[0] if src else ''
        where = f'{path.name} cell {i} ({first[:50]!r})'
        if PLOT.search(src) and 'image/png' not in kinds: out.append(f'{where}: draws a figure but has no PNG output')
        if re.match(r'\s*show_doc\(', src) and 'text/markdown' not in kinds: out.append(f'{where}: show_doc without its output')
        if first.startswith('# readme:') and 'text/markdown' not in kinds: out.append(f'{where}: result table without its output')
        if re.search(r'Epoch \d+/\d+ :|\r', texts): out.append(f'{where}: progress-bar output (call `docs_setup()` first)')
        for o in c.get('outputs', []):
            png = o.get('data', {}).get('image/png', '')
            if len(png) > MAX_IMAGE: out.append(f'{where}: a {len(png)//1000} kB image (lower the dpi or the figure size)')
    size = path.stat().st_size
    if size > MAX_NB: out.append(f'{path.name}: {size//1000} kB, more than {MAX_NB//1000} kB')
    return out

if __name__ == '__main__':
    paths = [Path(p) for p in sys.argv[1:]] or sorted((root/'nbs').glob('*.ipynb'))
    found = [p for path in paths for p in problems(path)]
    if found: sys.exit('Notebooks not stored as documentation (run `make nbs` and commit them):\n  ' + '\n  '.join(found))
    print(f'{len(paths)} notebooks stored with their outputs')
