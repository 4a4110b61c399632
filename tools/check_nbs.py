#!/usr/bin/env python3
"""Check that the notebooks in nbs/ are stored executed, as documentation: every cell that draws a figure has a PNG,
every `show_doc` cell and every result table (`# readme: NAME` cells) has its output, no output is progress-bar noise,
a warning with the paths of the machine that ran it, or oversized, and no Markdown cell types a figure (a decimal
number) that the notebook's code and outputs do not hold: prose quotes what the outputs say. `make nbs` re-executes the
notebooks in place (`slow` cells too); `make test` runs this check.
"""
import json, re, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from nb2readme import outputs_text, unquoted, readme_tag

root = Path(__file__).resolve().parent.parent
PLOT = re.compile(r'\bplot_\w+\(|\bplt\.subplots\(|\bdisplay\(Image\(')
MACHINE = re.compile(r'(/work/|/home/|/root/|/tmp/|/usr/|site-packages)')
MAX_IMAGE, MAX_NB = 150_000, 1_500_000  # bytes of base64 PNG per image, bytes per notebook

def problems(path: Path) -> list:
    nb, out = json.loads(path.read_text()), []
    for i, c in enumerate(nb['cells']):
        src = ''.join(c['source'])
        first = next((l for l in src.splitlines() if not l.startswith('#|')), '')
        where = f'{path.name} cell {i} ({first[:50]!r})'
        if c['cell_type'] == 'markdown':
            typed = unquoted(src, outputs_text(nb))
            if typed: out.append(f'{where}: types figures no output of the notebook holds: {typed} (quote an output instead)')
            continue
        if c['cell_type'] != 'code': continue
        outs = c.get('outputs', [])
        for o in outs:
            text = ''.join(o.get('text', '')) + ''.join(''.join(v) for v in o.get('data', {}).values() if isinstance(v, list))
            if o.get('name') == 'stderr': out.append(f'{where}: a stored stderr output (run `make nbs`: tools/tidy_outputs.py drops them)')
            elif MACHINE.search(text): out.append(f'{where}: an output names a path of the machine that ran it')
            if '<progress' in text or re.search(r'Epoch \d+/\d+ :|\r', text): out.append(f'{where}: progress-bar output')
            png = o.get('data', {}).get('image/png', '')
            if len(png) > MAX_IMAGE: out.append(f'{where}: a {len(png)//1000} kB image (lower the dpi or the figure size)')
        if re.search(r'^#\|\s*(hide|export|eval:\s*false)', src, re.M) and 'show_doc' not in src: continue  # not shown, or definitions
        kinds = {k for o in outs for k in o.get('data', {})}
        if PLOT.search(src) and 'image/png' not in kinds: out.append(f'{where}: draws a figure but has no PNG output')
        if re.match(r'\s*show_doc\(', src) and 'text/markdown' not in kinds: out.append(f'{where}: show_doc without its output')
        if readme_tag(src) and 'text/markdown' not in kinds: out.append(f'{where}: result table without its output')
    size = path.stat().st_size
    if size > MAX_NB: out.append(f'{path.name}: {size//1000} kB, more than {MAX_NB//1000} kB')
    return out

if __name__ == '__main__':
    paths = [Path(p) for p in sys.argv[1:]] or sorted((root/'nbs').glob('*.ipynb'))
    found = [p for path in paths for p in problems(path)]
    if found: sys.exit('Notebooks not stored as documentation (run `make nbs` and commit them):\n  ' + '\n  '.join(found))
    print(f'{len(paths)} notebooks stored with their outputs, their prose quoting them')
