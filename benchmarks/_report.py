"Write what a benchmark prints to a file as well, with the command and the machine that produced it (the README quotes these files)"
import contextlib, io, shlex, sys, time
from pathlib import Path

@contextlib.contextmanager
def report(path, markdown:bool=True):
    "Print as usual; if `path`, also write the printed text there (in a text block unless `markdown`), with its provenance"
    if not path:
        yield; return
    from fastai_disclr_examples.docs import provenance
    buf, out = io.StringIO(), sys.stdout
    class Tee(io.TextIOBase):
        def write(self, s): out.write(s); buf.write(s); return len(s)
        def flush(self): out.flush()
    with contextlib.redirect_stdout(Tee()): yield
    body = buf.getvalue().strip()
    if not markdown: body = f'```text\n{body}\n```'
    cmd = shlex.join(['python', f'benchmarks/{Path(sys.argv[0]).name}'] + sys.argv[1:])
    note = provenance(f"Produced by `{cmd}` on {time.strftime('%Y-%m-%d')}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(body + '\n\n' + note + '\n')
