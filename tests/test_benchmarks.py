"Smoke runs of the benchmarks (tiny sizes), so that they keep working; the figures are not checked, only that they come out."
import re, subprocess, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent

def run(script, *args):
    r = subprocess.run([sys.executable, str(root/'benchmarks'/script), *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout

def test_overhead_quick():
    out = run('overhead.py', '--quick')
    assert re.search(r'callbacks / plain training time: min [\d.]+  median [\d.]+  max [\d.]+', out), out
    assert re.search(r'time inside the callbacks per training batch: .* us = [\d.]+% of the plain training time', out), out
    assert len(re.findall(r'epoch \d: plain +\d+ +staged +\d+', out)) == 2, out

def test_transfer_quick():
    out = run('transfer.py', '--quick')
    for method in ['uniform LR, all layers', 'fine_tune', 'fastbook sequence, by hand', 'one call, restart=True', 'one call, restart=False', 'one call, ULMFiT defaults',
                   'stages, fixed', 'stages, patience=1', 'stages, patience=1, restore']:
        # the selected LR, its validation accuracy and the test accuracy; then the test accuracy at each LR of the grid
        assert re.search(rf'^\| {re.escape(method)}\s+\| \de-\d\d \| [01]\.\d{{3}} \| [01]\.\d{{3}} \|', out, re.M), out
        assert re.search(rf'^\| {re.escape(method)}\s+\| [01]\.\d{{3}} \| [01]\.\d{{3}} \|$', out, re.M), out
    rows = {m: re.findall(rf'^\| {re.escape(m)}\s+(\|.*)$', out, re.M) for m in ['fastbook sequence, by hand', 'one call, restart=True']}
    assert rows['fastbook sequence, by hand'] == rows['one call, restart=True'], rows  # the same weights, the same accuracies
    assert re.search(r'^  - stages, patience=1, restore minus stages, fixed: [+-]\d\.\d{3} \(standard error', out, re.M), out
