"Smoke runs of the benchmarks (tiny sizes), so that they keep working: the tables come out whole and add up; the figures are not checked"
import json, re, subprocess, sys
from pathlib import Path
import pytest

root = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(root/'benchmarks'))
NUM = r'[\d.]+'

def run(script, *args):
    r = subprocess.run([sys.executable, str(root/'benchmarks'/script), *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout

def test_overhead_quick():
    from overhead import CONFIGS
    out = run('overhead.py', '--quick')
    for opt in ['fastai Adam', 'torch AdamW foreach']:
        for cfg in CONFIGS:
            # groups, optimizer, callbacks; step time; ours min/median/max; share min/median/max; fastai's own; floor
            row = rf'^\| \d+ \| {re.escape(opt)} \| {re.escape(cfg)} \| {NUM} \| {NUM} / {NUM} / {NUM} \| {NUM} / {NUM} / {NUM} \| {NUM} / {NUM} / {NUM} \| {NUM} \|$'
            assert len(re.findall(row, out, re.M)) == 2, (opt, cfg, out)  # one row for each of the two group counts
        assert len(re.findall(rf'^  - \d+ groups, {re.escape(opt)}: \d+ batches, {NUM} s a fit, = \d+ training batches', out, re.M)) == 2, out

def test_overhead_end_to_end_quick():
    out = run('overhead.py', '--quick', '--end-to-end')
    assert re.search(r'callbacks / plain training time: min [\d.]+  median [\d.]+  max [\d.]+', out), out
    assert re.search(r'time inside the callbacks per training batch: .* us = [\d.]+% of the plain training time', out), out
    epochs = re.findall(r'epoch \d: plain +\d+ +staged +\d+ +\((\d)/(\d) groups trainable', out)
    assert [int(k) for k,_ in epochs] == [1, 2, 3, 4, 5] and {n for _,n in epochs} == {'5'}, out  # ULMFiT thaws a group an epoch

@pytest.fixture(scope='module')
def transfer_quick(tmp_path_factory):
    path = tmp_path_factory.mktemp('transfer')/'quick.md'
    return run('transfer.py', '--quick', '--out', str(path)),json.loads(path.with_suffix('.json').read_text())

def test_transfer_quick_tables(transfer_quick):
    from transfer import GRID, FOUND, AT_DEFAULT
    out,_ = transfer_quick
    rows = {}
    for m in list(GRID) + list(FOUND):
        # LR (picked from the grid, or found), valid, test (se), out of distribution (se), choosing and training batches
        hit = re.search(rf'^\| {re.escape(m)}\s+\| (\de-\d\d(?:-\de-\d\d)?\*?|found|default) +\| [01]\.\d{{3}} \| [01]\.\d{{3}} \(nan\) \| '
                        rf'[01]\.\d{{3}} \(nan\) +\| +(\d+) \| +(\d+) \| +(\d+) \|$', out, re.M)
        assert hit, (m, out)
        rows[m] = (hit.group(1), *map(int, hit.groups()[1:]))
        assert (rows[m][0] in ('found', 'default')) == (m in FOUND) and (rows[m][0] == 'default') == (m in AT_DEFAULT)
    # every method trains for the same number of batches; the grid's choosing cost is its 2 LRs' runs (the picked one among
    # them: the total), the range tests' is their batches, then the fit
    assert len({t for _,_,t,_ in rows.values()}) == 1, rows
    for m in GRID: assert rows[m][1] == 2*rows[m][2] == rows[m][3], (m, rows[m])
    for m in FOUND: assert (rows[m][1] > 0) == (m not in AT_DEFAULT) and rows[m][3] == rows[m][1] + rows[m][2], (m, rows[m])
    for m in FOUND: assert re.search(rf'^\| {re.escape(m)}\s+\| [+-]\d\.\d{{3}} \(nan\)', out, re.M), (m, out)  # paired differences
    for m in GRID: assert re.search(rf'^\| {re.escape(m)}\s+\| [01]\.\d{{3}} \| [01]\.\d{{3}} \|$', out, re.M), (m, out)  # the grid

def test_transfer_quick_json(transfer_quick):
    "The .json beside the report holds every run, and the picked LR is the one with the best validation accuracy"
    from transfer import GRID, FOUND, AT_DEFAULT
    _,js = transfer_quick
    d = js['digits']
    assert set(d['methods']) == set(GRID) | set(FOUND)
    for m in GRID:  # each seed's pick is its best validation accuracy
        for s,pick in enumerate(d['picked'][m]):
            valid = {float(lr): r[s][0] for lr,r in d['methods'][m].items()}
            assert max(valid.values()) == valid[pick], (m, s, valid, pick)
    for m in FOUND: assert (m in AT_DEFAULT) == (m not in d['found']) and all(x > 0 for x in d['found'].get(m, [[1]])[0])

def test_choosing_quick(tmp_path):
    """The one call's LR choice costs at most one `lr_find` (100 batches) however many stages; every method of the report is
    run on the same seed, the reference's cost is `lr_find`'s batches, and the rule is applied"""
    from choosing import METHODS, MIDPOINT, REF, GRID_NAME
    out = run('choosing.py', '--quick', '--tasks', 'digits_a', '--json', str(tmp_path/'q.json'))
    t, = json.loads((tmp_path/'q.json').read_text())
    E,n_iter = t['epochs'],t['results'][REF][0]['n_iter']
    for m in list(METHODS) + list(MIDPOINT):  # 4 groups in a 4-epoch fit: the midpoint schedule differs from ULMFiT's there
        r, = t['results'][m]
        assert 0 <= r['choose'] <= 100 and 0 <= r['test'] <= 1 and 0 <= r['ood'] <= 1, (m, r)
        if m.startswith('one call'): assert r['choose'] > 0 and len(r['picks']) == 1, (m, r)  # one range test, 4 stages
        row = re.search(rf'^\| {re.escape(m)} \| [01]\.\d{{3}} \(nan\) \| [01]\.\d{{3}} \(nan\) \|.*\| (\d+) \| ({NUM}) \|', out, re.M)
        assert row and int(row.group(1)) == r['choose'] + E*n_iter, (m, out)
    row = re.search(rf'^\| {re.escape(GRID_NAME)} \|.*\| (\d+) \| {NUM} \|', out, re.M)
    assert row and int(row.group(1)) == len(t['grid'])*E*n_iter, out  # the grid: every run of it
    assert re.search(r"^- D1: .* the default of `DiscriminativeLR\('find'\)` is `ratio=(1|2\.6)`", out, re.M), out
