"""Helpers for the notebooks stored with their outputs: a quiet, steady kernel, result tables, and `show_doc`'s renderer."""
from __future__ import annotations
from pathlib import Path
import os, warnings
warnings.filterwarnings('ignore', category=FutureWarning)  # torch's own (`torch.jit.script`), raised when fastai imports
import torch

__all__ = ['docs_setup', 'md_table', 'report_section', 'provenance', 'TableRenderer']

def docs_setup(
    dpi:int=80, # Resolution of the stored figures
):
    "What a reader's Jupyter shows, small and steady: fastai's epoch table, one torch thread (or `OMP_NUM_THREADS`), PNG figures"
    import matplotlib as mpl
    import fastprogress.fastprogress as fp
    import fastai.callback.progress as progress
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', 1)))
    # nbdev executes notebooks outside Jupyter, where fastprogress draws console bars; draw fastai's epoch table as a
    # notebook does (the stored progress-bar frames are dropped by tools/tidy_outputs.py, leaving the final table)
    progress.master_bar,progress.progress_bar = fp.NBMasterBar,fp.NBProgressBar
    mpl.rcParams.update({'figure.dpi': dpi, 'savefig.dpi': dpi})
    try:
        from matplotlib_inline.backend_inline import set_matplotlib_formats
        set_matplotlib_formats('png')
    except ImportError: pass

def md_table(
    header:list, # Column names
    rows:list, # One list of cells per row; floats are written with `fmt`
    note:str='', # How the figures were produced, written under the table
    fmt:str='{:.3f}', # Format of float cells
):
    "A Markdown table (shown as such in a notebook), with a note on how its figures were produced"
    from IPython.display import Markdown
    cell = lambda v: fmt.format(v) if isinstance(v, float) else str(v)
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|'*len(header)] + ['| ' + ' | '.join(map(cell, r)) + ' |' for r in rows]
    return Markdown('\n'.join(lines) + (f'\n\n{note}' if note else ''))

def report_section(
    report:str, # A report's file name in `benchmarks/results/`, e.g. 'choosing.md'
    heading:str, # The start of the heading of the section to show
):
    "A section of a benchmark report, as Markdown, with the report's provenance line: figures quoted, never typed"
    from IPython.display import Markdown
    root = next(p for p in [Path.cwd(), *Path.cwd().parents] if (p/'benchmarks'/'results').is_dir())
    text = (root/'benchmarks'/'results'/report).read_text()
    lines,out,on = text.splitlines(),[],False
    for l in lines:
        if l.startswith('#'): on = l.lstrip('# ').startswith(heading)
        elif on and not l.startswith('Produced by'): out.append(l)
    if not out: raise ValueError(f"{report} has no section whose heading starts with {heading!r}")
    return Markdown('\n'.join(out).strip() + f"\n\nFrom `benchmarks/results/{report}`. " + lines[-1])

def provenance(
    how:str, # What produced the figures (a command, a notebook)
) -> str:
    "A line that says how a table's figures were produced: `how`, the processor, torch version, torch threads, CPU count"
    import platform
    return (f"{how}; {cpu_model()}, torch {torch.__version__.split('+')[0]}, {torch.get_num_threads()} torch thread(s), "
            f"{os.cpu_count()} CPU(s), Python {platform.python_version()}.")

def cpu_model() -> str:
    "The processor's name, as the OS reports it (CPU kernels, so the last decimals of a CPU run, differ between processors)"
    import platform, re
    try: m = re.search(r'^model name\s*:\s*(.+)$', Path('/proc/cpuinfo').read_text(), re.M)
    except OSError: m = None
    return m.group(1).strip() if m else (platform.processor() or platform.machine())

def _short(o) -> str:
    "A default or a type as a reader writes it"
    import inspect
    if o is inspect.Parameter.empty: return ''
    if isinstance(o, type): return o.__name__
    return getattr(o, '__name__', None) or repr(o)

class TableRenderer:
    """`show_doc` as fastai's pages read: the signature without its comments, the docstring, and a table of the parameters
    (type, default, the docments comment); a property reads as an attribute. Set in `[tool.nbdev] renderer`."""
    def __init__(self, sym, name:str|None=None, title_level:int=3):
        from fastcore.docments import DocmentTbl, qual_name
        self.prop = isinstance(sym, property)
        self.sym = sym.fget if self.prop else sym
        self.nm = name or qual_name(self.sym)
        self.title_level = title_level
        self.tbl = None if self.prop else DocmentTbl(self.sym)
        for d in (self.tbl.dm.values() if self.tbl is not None else []): # a comment over several lines: one cell
            if isinstance(d['docment'], str): d['docment'] = ' '.join(d['docment'].split())

    def _sig(self) -> str:
        import inspect
        if self.prop: return self.nm
        try: sig = inspect.signature(self.sym, eval_str=True)
        except (TypeError, ValueError, NameError): sig = inspect.signature(self.sym)
        ps = [p for n,p in sig.parameters.items() if n != 'self']
        args = [('**' if p.kind == p.VAR_KEYWORD else '*' if p.kind == p.VAR_POSITIONAL else '') + p.name
                + (f'={_short(p.default)}' if p.default is not p.empty else '') for p in ps]
        one = f"{self.nm}({', '.join(args)})"
        if len(one) <= 76: return one
        # wrapped as black would, so that the box is never wider than the page
        lines,cur = [],'    '
        for a in args:
            if len(cur) + len(a) + 2 > 76 and cur.strip(): lines.append(cur.rstrip()); cur = '    '
            cur += a + ', '
        return f"{self.nm}(\n" + '\n'.join(lines + [cur.rstrip()]) + "\n)"

    def _repr_markdown_(self):
        import inspect
        doc = inspect.getdoc(self.sym) or ''
        kind = ' (property)' if self.prop else ''
        out = f"{'#'*self.title_level} {self.nm}\n\n```python\n{self._sig()}\n```\n\n*{doc}*{kind}\n"
        if self.tbl is not None and self.tbl.has_docment: out += '\n' + self.tbl._repr_markdown_() + '\n'
        return out
    def __repr__(self): return self._sig()
