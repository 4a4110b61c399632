#!/usr/bin/env python3
"""Open every page of the built docs site (_docs/) in headless Chromium, as a reader would, and fail on:
a console error or uncaught exception, a resource that failed to load, a broken internal link (missing page or
section), an image that did not load (`naturalWidth == 0`), or a public name of the package without its API section.
Saves screenshots of the home page and the `DiscriminativeLR` page to _docs_check/. Drives Chromium through the
DevTools protocol (no browser download: Debian's `chromium`).
"""
import base64, functools, http.server, json, os, re, shutil, socketserver, subprocess, sys, tempfile, threading, time, warnings
warnings.filterwarnings('ignore', category=DeprecationWarning)  # websockets' own, about its connection API
warnings.filterwarnings('ignore', category=FutureWarning)  # torch's own (`torch.jit.script`), raised when fastai imports
from pathlib import Path
from urllib.parse import urlparse, unquote
from websockets.sync.client import connect

root = Path(__file__).resolve().parent.parent
SITE, SHOTS = root/'_docs', root/'_docs_check'

class CDP:
    "A minimal DevTools-protocol client: one browser connection, one page session"
    def __init__(self, ws_url):
        self.ws, self.n, self.events = connect(ws_url, max_size=2**27, open_timeout=30), 0, []
        target = self.call('Target.createTarget', url='about:blank')['targetId']
        self.session = self.call('Target.attachToTarget', targetId=target, flatten=True)['sessionId']
        for domain in ['Page', 'Runtime', 'Log', 'Network']: self.call(f'{domain}.enable', session=True)
        self.call('Emulation.setDeviceMetricsOverride', session=True, width=1280, height=900, deviceScaleFactor=1, mobile=False)

    def call(self, method, session=False, timeout=30, **params):
        self.n += 1
        msg = dict(id=self.n, method=method, params=params)
        if session: msg['sessionId'] = self.session
        self.ws.send(json.dumps(msg))
        end = time.time() + timeout
        while time.time() < end:
            r = json.loads(self.ws.recv(timeout=max(0.1, end - time.time())))
            if r.get('id') == self.n:
                if 'error' in r: raise RuntimeError(f'{method}: {r["error"]}')
                return r.get('result', {})
            self.events.append(r)
        raise TimeoutError(method)

    def wait_event(self, method, timeout=30):
        for i, e in enumerate(self.events):
            if e.get('method') == method: return self.events.pop(i)
        end = time.time() + timeout
        while time.time() < end:
            e = json.loads(self.ws.recv(timeout=max(0.1, end - time.time())))
            if e.get('method') == method: return e
            self.events.append(e)
        raise TimeoutError(method)

    def drain(self, seconds=0.3):
        end = time.time() + seconds
        try:
            while time.time() < end: self.events.append(json.loads(self.ws.recv(timeout=max(0.01, end - time.time()))))
        except TimeoutError: pass

    def js(self, expr):
        r = self.call('Runtime.evaluate', session=True, expression=expr, returnByValue=True, awaitPromise=True)
        if 'exceptionDetails' in r: raise RuntimeError(f'{expr[:60]}: {r["exceptionDetails"]}')
        return r['result'].get('value')

PAGE_STATE = '''(() => ({
  images: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src),
  links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  ids: [...document.querySelectorAll('[id]')].map(e => e.id),
  nav: document.querySelectorAll('.sidebar-tree a.reference').length,
  title: document.title,
  // Markdown a renderer left as text: a table's rows, bold marks, code fences, a link's `](target)`, in a paragraph, a list item or
  // a table's cell
  raw_md: [...document.querySelectorAll('article p, article li, article td, article th')]
            .map(e => { const c = e.cloneNode(true); c.querySelectorAll('code, pre').forEach(x => x.remove()); return c.textContent; })
            .filter(t => /\|\s*:?-{3,}:?\s*\|/.test(t) || /^\s*\|.*\|\s*$/m.test(t) || /\*\*\S/.test(t) || t.includes('```')
                         || /\]\([^)\s]+\)/.test(t))
            .map(t => t.slice(0, 80)),
  // text cut off by its box: code blocks, outputs and tables wider than the page's column
  cut: [...document.querySelectorAll('article pre, article table, article .cell_output')]
         .filter(e => e.scrollWidth > e.clientWidth + 8 || e.getBoundingClientRect().right > document.querySelector('article').getBoundingClientRect().right + 8)
         .map(e => e.textContent.trim().slice(0, 80)),
  // each API section: its heading's id and the signature shown under it
  sections: Object.fromEntries([...document.querySelectorAll('article section[id]')].map(s => {
      const pre = s.querySelector('pre'); return [s.id, pre ? pre.textContent : ''];
  })),
  index_entries: document.querySelectorAll('table.indextable td, .genindex-jumpbox a').length,
}))()'''

def errors_of(events):
    "Console errors, uncaught exceptions, failed loads among the DevTools events"
    out = []
    for e in events:
        m, p = e.get('method'), e.get('params', {})
        if m == 'Runtime.consoleAPICalled' and p.get('type') in ('error', 'assert'):
            out.append('console.error: ' + ' '.join(str(a.get('value', a.get('description', ''))) for a in p.get('args', [])))
        elif m == 'Runtime.exceptionThrown': out.append('exception: ' + p['exceptionDetails'].get('text', '') + ' ' + str(p['exceptionDetails'].get('exception', {}).get('description', '')))
        elif m == 'Log.entryAdded' and p['entry'].get('level') == 'error': out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        elif m == 'Network.loadingFailed' and not p.get('canceled'): out.append(f"failed to load: {p.get('errorText')} ({p.get('type')})")
    return out

def properties():
    "(page, section id, name) of the public names that are properties: read as attributes, never called"
    import importlib, inspect
    out = []
    for page, sid, name in api_names():
        if '.' not in name: continue
        cls, attr = name.split('.', 1)
        for mod in ('core', 'splitters', 'stages', 'find', 'grad', 'lrs', 'diagnostics'):
            o = getattr(importlib.import_module(f'fastai_disclr.{mod}'), cls, None)
            if o is not None and isinstance(inspect.getattr_static(o, attr, None), property): out.append((page, sid, name))
    return out

def api_names():
    """(page, section id, name) of each public name of the package, as nbdev's index links it: the modules' `__all__` and the
    attributes of those classes a user calls or reads (callback events, which fastai calls, and `forward` are not)"""
    from fastai.callback.core import _events
    from docutils.nodes import make_id
    sys.path.insert(0, str(root))
    from fastai_disclr._modidx import d
    import importlib
    out = []
    for mod, syms in d['syms'].items():
        public = set(getattr(importlib.import_module(mod), '__all__', []))
        for name, (link, _) in syms.items():
            short = name[len(mod)+1:]
            parts = short.split('.')
            if parts[0] not in public or any(p.startswith('_') for p in parts): continue
            # callback events and `FitCallback`'s hooks are fastai's to call: the base class documents the hooks once
            hooks = {'forward', 'setup', 'finish', 'epoch_start', 'fit_start', 'learn'} if parts[0] != 'FitCallback' else {'learn'}
            if len(parts) > 1 and (parts[-1] in _events or parts[-1] in hooks): continue
            out.append((link.split('#')[0], make_id(short), short))
    return out

def serve(directory):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    handler = functools.partial(Quiet, directory=str(directory))
    httpd = socketserver.TCPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f'http://127.0.0.1:{httpd.server_address[1]}'

def main():
    global SITE
    if '--site' in sys.argv: SITE = Path(sys.argv[sys.argv.index('--site')+1]).resolve()  # another build, e.g. an older one
    if not (SITE/'index.html').exists(): sys.exit('no site in _docs/: run `make docs` first')
    exe = shutil.which('chromium') or shutil.which('chromium-browser')
    if not exe: sys.exit('no chromium on the PATH')
    httpd, base = serve(SITE)
    profile = tempfile.mkdtemp()
    browser = subprocess.Popen([exe, '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                                '--no-first-run', '--remote-debugging-port=0', f'--user-data-dir={profile}', 'about:blank'],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = Path(profile)/'DevToolsActivePort'
        for _ in range(300):
            if port_file.exists() and len(port_file.read_text().split()) == 2: break
            time.sleep(0.1)
        port, path = port_file.read_text().split()
        cdp = CDP(f'ws://127.0.0.1:{port}{path}')
        pages = sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob('*.html') if not p.name.startswith('_'))
        problems, states = [], {}
        for page in pages:
            cdp.events.clear()
            cdp.call('Page.navigate', session=True, url=f'{base}/{page}')
            cdp.wait_event('Page.loadEventFired')
            cdp.drain()
            st = cdp.js(PAGE_STATE)
            states[page] = st
            problems += [f'{page}: {e}' for e in errors_of(cdp.events)]
            problems += [f'{page}: image did not load: {src}' for src in st['images']]
            if page not in ('search.html', 'genindex.html') and st['nav'] < 5: problems.append(f'{page}: no navigation bar')
            problems += [f'{page}: Markdown left as text: {t!r}' for t in dict.fromkeys(st['raw_md'])]  # a cell's paragraph once
            problems += [f'{page}: text cut off by its box (wider than the page): {t!r}' for t in st['cut']]
            if page == 'genindex.html' and st['index_entries'] == 0: problems.append(f'{page}: an empty index')
            if page == 'lrs.html': shot(cdp, 'lrs.png')
            if page == 'index.html': shot(cdp, 'index.png')
        ids = {p: set(s['ids']) for p, s in states.items()}
        for page, st in states.items():
            for href in st['links']:
                u = urlparse(href)
                if not href.startswith(base): continue
                target = unquote(u.path.lstrip('/')) or 'index.html'
                if target.endswith('/'): target += 'index.html'
                if not (SITE/target).exists(): problems.append(f'{page}: broken link to {target}')
                elif u.fragment and target in ids and u.fragment not in ids[target]: problems.append(f'{page}: broken link to {target}#{u.fragment}')
        names = api_names()
        for pg, sid, name in names:
            if pg not in ids: problems.append(f'{name}: its page {pg} is not in the site')
            elif sid not in ids[pg]: problems.append(f'{name}: no API section on {pg} (#{sid})')
        for pg, sid, name in properties():
            sig = states.get(pg, {}).get('sections', {}).get(sid, '')
            short = name.split('.')[-1]
            if re.search(rf'\bdef\b|\b{short}\s*\(', sig): problems.append(f'{name}: a property shown as a method on {pg}: {sig.strip()[:60]!r}')
        ref = states.get('all.html')
        if ref is None: problems.append('all.html: no API reference page')
        else:
            linked = {unquote(urlparse(h).fragment) for h in ref['links']}
            problems += [f'all.html: the API reference lists no {name}' for pg, sid, name in names if '.' not in name and sid not in linked]
        if problems: sys.exit(f'{len(problems)} problem(s) in the docs site:\n  ' + '\n  '.join(problems))
        n_links = sum(len(s['links']) for s in states.values())
        print(f'docs site: {len(pages)} pages opened in Chromium, {n_links} links and the API sections of {len(names)} public names '
              f'checked; no console error, broken link or unloaded image. Screenshots in {SHOTS.relative_to(root)}/')
    finally:
        browser.terminate(); httpd.shutdown()
        shutil.rmtree(profile, ignore_errors=True)

def shot(cdp, name):
    SHOTS.mkdir(exist_ok=True)
    h = cdp.js('document.documentElement.scrollHeight')
    data = cdp.call('Page.captureScreenshot', session=True, format='png', captureBeyondViewport=True,
                    clip=dict(x=0, y=0, width=1280, height=min(h, 6000), scale=1))['data']
    (SHOTS/name).write_bytes(base64.b64decode(data))

if __name__ == '__main__': main()
