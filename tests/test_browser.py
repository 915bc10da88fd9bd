"""The saved problem map in a REAL headless Chromium with the network off.

Chromium is driven over the Chrome DevTools Protocol with a minimal stdlib websocket client
(no extra package): the page's JS exceptions, console errors, network requests and any
``alert`` dialog are recorded, Leaflet's drawn SVG paths and markers are counted in the live
DOM, the popup of the facility named ``<img src=x onerror=alert(1)>`` is opened to check
it renders as text, and a screenshot goes to ``outputs/``.

Skips with the reason when ``chromium`` is not installed (``scripts/sysdeps.sh`` installs
the Debian package).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from geotijian.model import StudyData
from geotijian.report import maps

from .test_report import XSS, make_study

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((p for p in (os.environ.get("GEOTIJIAN_CHROMIUM"), "/usr/bin/chromium",
                             shutil.which("chromium"), shutil.which("chromium-browser"))
                 if p and Path(p).exists()), None)


class WebSocket:
    """Just enough RFC 6455 for CDP: text frames, client masking, fragmentation, ping."""

    def __init__(self, url: str, timeout: float = 30.0):
        assert url.startswith("ws://")
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            head += chunk
        status, _, rest = head.partition(b"\r\n\r\n")
        if b" 101 " not in status.split(b"\r\n")[0]:
            raise ConnectionError(f"websocket handshake failed: {status[:200]!r}")
        self.buf = rest

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("websocket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, text: str, opcode: int = 0x1) -> None:
        data = text.encode() if isinstance(text, str) else text
        n = len(data)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(head + mask + body)

    def recv(self) -> str:
        parts = []
        while True:
            b0, b1 = self._read(2)
            fin, opcode, n = b0 & 0x80, b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:  # ping
                self.send(payload, opcode=0xA)
                continue
            if opcode == 0x8:
                raise ConnectionError("websocket closed by the browser")
            parts.append(payload)
            if fin:
                return b"".join(parts).decode()

    def close(self) -> None:
        self.sock.close()


class CDP:
    """Commands and events over one page's DevTools websocket."""

    def __init__(self, ws_url: str):
        self.ws = WebSocket(ws_url)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, timeout: float = 30.0, **params) -> dict:
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"CDP {method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)
        raise TimeoutError(f"CDP {method} timed out")

    def wait_event(self, method: str, timeout: float = 30.0) -> dict:
        for ev in self.events:
            if ev["method"] == method:
                return ev
        end = time.monotonic() + timeout
        self.ws.sock.settimeout(timeout)
        while time.monotonic() < end:
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == method:
                    return msg
        raise TimeoutError(f"no {method} event within {timeout} s")

    def evaluate(self, expr: str):
        res = self.call("Runtime.evaluate", expression=expr, returnByValue=True,
                        awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"page JS failed: {res['exceptionDetails']}")
        return res["result"].get("value")


@pytest.fixture
def browser(tmp_path):
    if CHROMIUM is None:
        pytest.skip("headless Chromium not installed (Debian package 'chromium'; "
                    "scripts/sysdeps.sh installs it)")
    profile = Path(tempfile.mkdtemp(prefix="gtj-chromium-", dir=tmp_path))
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-extensions", "--disable-dev-shm-usage",
            f"--user-data-dir={profile}", "--remote-debugging-port=0",
            # the network is off: every request goes to a dead proxy, names do not resolve
            "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--window-size=1200,900", "about:blank"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        end = time.monotonic() + 40
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None:
                pytest.skip(f"chromium exited at start (code {proc.returncode})")
            if time.monotonic() > end:
                pytest.skip("chromium did not open its DevTools port within 40 s")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        targets = json.loads(opener.open(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t.get("type") == "page")
        cdp = CDP(page["webSocketDebuggerUrl"])
        for domain in ("Page", "Runtime", "Log", "Network"):
            cdp.call(f"{domain}.enable")
        cdp.call("Emulation.setDeviceMetricsOverride", width=1200, height=900,
                 deviceScaleFactor=1, mobile=False)
        yield cdp
        cdp.ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _open(cdp: CDP, path: Path) -> None:
    cdp.call("Page.navigate", url=path.resolve().as_uri())
    cdp.wait_event("Page.loadEventFired", timeout=30)
    # let Leaflet finish drawing (tiles fail at once: the proxy is dead)
    deadline = time.monotonic() + 2.0
    cdp.ws.sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            cdp.events.append(json.loads(cdp.ws.recv()))
        except (TimeoutError, socket.timeout):
            pass
    cdp.ws.sock.settimeout(30)


def _errors(cdp: CDP) -> dict[str, list]:
    out = {"exceptions": [], "console": [], "log": [], "requests": [], "dialogs": []}
    for ev in cdp.events:
        m, p = ev["method"], ev.get("params", {})
        if m == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            out["exceptions"].append(f"{d.get('text')} {d.get('exception', {}).get('description')}"
                                     f" at line {d.get('lineNumber')}:{d.get('columnNumber')}")
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out["console"].append([a.get("value", a.get("description")) for a in p.get("args", [])])
        elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
            out["log"].append((p["entry"].get("source"), p["entry"].get("url", ""),
                               p["entry"]["text"]))
        elif m == "Network.requestWillBeSent":
            out["requests"].append(p["request"]["url"])
        elif m == "Page.javascriptDialogOpening":
            out["dialogs"].append(p.get("message"))
    return out


_COUNT_JS = """(() => ({
  L: typeof L !== 'undefined' ? L.version : null,
  paths: document.querySelectorAll('path.leaflet-interactive').length,
  dots: typeof gtjDotLayers === 'undefined' ? 0 : gtjDotLayers.reduce((n, l) => n + l.shown, 0),
  dotLayers: typeof gtjDotLayers === 'undefined' ? 0 : gtjDotLayers.length,
  canvases: document.querySelectorAll('canvas.gtj-dots').length,
  towns: Array.from(document.querySelectorAll('.gtj-town a')).map(a => a.getAttribute('href')),
  nav: Array.from(document.querySelectorAll('.gtj-nav a')).map(a => a.getAttribute('href')),
  overlays: document.querySelectorAll('.leaflet-control-layers-overlays label').length,
  bases: document.querySelectorAll('.leaflet-control-layers-base label').length,
  legend: (document.querySelector('.gtj-legend') || {}).innerText || '',
  title: (document.querySelector('.gtj-title') || {}).innerText || '',
  labels: Array.from(document.querySelectorAll('.leaflet-control-layers label'))
            .map(l => l.innerText.trim()),
}))()"""

_ALL_ON_JS = """(() => {
  const boxes = Array.from(document.querySelectorAll('.leaflet-control-layers-overlays input'));
  let n = 0;
  boxes.forEach(i => { if (!i.checked) { i.click(); n += 1; } });
  return n;
})()"""

_SOME_ON_JS = """(() => {
  // what a reader turns on first: every facility layer and the first coverage-gap type
  let group = '', firstGap = true, n = 0;
  Array.from(document.querySelector('.leaflet-control-layers-overlays').children).forEach(el => {
    if (el.classList.contains('gtj-grp')) { group = el.textContent; return; }
    const i = el.querySelector('input');
    const want = (group.includes('设施') && !group.includes('服务范围')) || (group.includes('覆盖缺口') && firstGap);
    if (group.includes('覆盖缺口')) { firstGap = false; }
    if (want && !i.checked) { i.click(); n += 1; }
  });
  return n;
})()"""

_RECTS_JS = """(() => {
  const r = s => { const e = document.querySelector(s); if (!e) return null;
                   const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
  const ctl = document.querySelector('.leaflet-control-layers');
  return {w: window.innerWidth, h: window.innerHeight, legend: r('.gtj-legend'), side: r('.gtj-side'),
          control: r('.leaflet-control-layers'), title: r('.gtj-title'),
          controlExpanded: ctl ? ctl.classList.contains('leaflet-control-layers-expanded') : null,
          legendOpen: (document.querySelector('.gtj-legend') || {}).open,
          sideOpen: (document.querySelector('.gtj-side') || {}).open,
          groups: Array.from(document.querySelectorAll('.gtj-grp')).map(g => g.textContent)};
})()"""

_XSS_POPUP_JS = """(() => {
  // the facility is a point of a canvas layer: open its popup as a click on it would
  let opened = 0;
  gtjDotLayers.forEach(l => { const d = l.data();
    for (let i = 0; i < d.lat.length; i++) { if (String(d.tip(i)).includes('onerror')) { l.openPopup(i); opened += 1; } } });
  const pop = document.querySelector('.leaflet-popup-content');
  return {opened: opened, text: pop ? pop.innerText : null,
          imgs: pop ? pop.querySelectorAll('img').length : -1,
          allImgX: document.querySelectorAll('img[src="x"]').length};
})()"""


def test_problem_map_in_headless_chromium_offline(browser, tmp_path):
    study = make_study()
    html_path = maps.save_problem_map(maps.problem_map(study, basemap="osm"),
                                      tmp_path / "problem_map.html")
    _open(browser, html_path)
    state = browser.evaluate(_COUNT_JS)
    errs = _errors(browser)

    assert state["L"] == "1.9.4", "Leaflet did not load from the inlined script"
    assert errs["exceptions"] == [], errs["exceptions"]
    assert errs["console"] == [], errs["console"]
    # only the OSM tiles may fail (the network is off); no script, stylesheet or font
    remote = [u for u in errs["requests"] if not u.startswith(("file:", "data:", "about:"))]
    assert remote and all("tile.openstreetmap.org" in u for u in remote), remote[:5]
    assert all(src == "network" and "tile.openstreetmap.org" in url
               for src, url, _ in errs["log"]), errs["log"]
    assert errs["dialogs"] == []
    # Leaflet drew the layers: units, boundary, towns, hot spots, problems as SVG paths;
    # at load: areas (units choropleth, towns, boundary) and the problems on their units, as
    # SVG paths; facilities, gaps, service areas and hot spots are off (a click away): no
    # canvas point layer yet
    assert state["paths"] >= 4 + 2 + 1 + 6 and state["dots"] == 0 and state["canvases"] == 0, state
    assert state["overlays"] == 13 and state["bases"] == 2, state
    assert "人口密度" in state["legend"] and "限时解决" in state["legend"]
    assert state["title"] == "测试区 2024 年城市体检问题地图"
    rects = browser.evaluate(_RECTS_JS)
    assert [g.split(" (")[0][2:] for g in rects["groups"][1:]] == ["评估单元", "设施", "设施服务范围", "覆盖缺口",
                                                                 "问题", "热线"]
    assert rects["groups"][0] == "底图"
    shot = browser.call("Page.captureScreenshot", format="png")
    (ROOT / "outputs").mkdir(exist_ok=True)
    (ROOT / "outputs" / "browser_problem_map_load.png").write_bytes(base64.b64decode(shot["data"]))
    # every overlay on: the gap homes of both types (6 each) and the 64 facilities as points
    # on canvases (one a layer: two life-circle levels, two gap types), no marker cluster
    assert browser.evaluate(_ALL_ON_JS) == 7   # (the service areas: one layer per type)
    time.sleep(0.5)
    state = browser.evaluate(_COUNT_JS)
    assert state["paths"] > 20 and state["dots"] >= 64 + 12 and state["canvases"] == 4, state
    assert state["dotLayers"] == 4 and not browser.evaluate("document.querySelector('.marker-cluster')"), state
    assert _errors(browser)["exceptions"] == []

    # the XSS facility: its popup shows the name as text, no <img> element is created
    pop = browser.evaluate(_XSS_POPUP_JS)
    assert pop["opened"] >= 1
    assert XSS in pop["text"]
    assert pop["imgs"] == 0 and pop["allImgX"] == 0
    assert "小学" in pop["text"]  # type shown by its catalogue name
    assert _errors(browser)["dialogs"] == []

    time.sleep(0.5)  # popup fade-in
    shot = browser.call("Page.captureScreenshot", format="png")
    out = ROOT / "outputs" / "browser_problem_map.png"
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(base64.b64decode(shot["data"]))
    assert out.stat().st_size > 20_000
    print(f"screenshot: {out} ({out.stat().st_size} bytes); "
          f"{state['paths']} SVG paths, {state['dots']} points on {state['canvases']} canvases")


def test_blank_basemap_makes_no_request_at_all(browser, tmp_path):
    study = make_study()
    html_path = maps.save_problem_map(maps.problem_map(study, basemap="blank", lang="en"),
                                      tmp_path / "blank.html")
    _open(browser, html_path)
    state = browser.evaluate(_COUNT_JS)
    errs = _errors(browser)
    assert state["L"] == "1.9.4"
    assert errs["exceptions"] == [] and errs["console"] == [] and errs["log"] == [], errs
    remote = [u for u in errs["requests"] if not u.startswith(("file:", "data:", "about:"))]
    assert remote == []
    assert state["paths"] > 10 and state["dots"] == 0   # facilities and gaps are off at load
    assert "solve within a deadline: 1 units, 1 points" in state["labels"]


def district_study(seed: int = 15) -> StudyData:
    """A synthetic district at Jiading's scale for the map: 264 units in 11 contiguous towns over
    21 × 21 km, 23,700 compounds of which 21,000 lack 1-14 of 14 facility types (about
    150,000 home × type gaps), 8,000 facilities, 3,600 problems on units. Built with
    vectorised numpy (a second), not from the sample generator (minutes)."""
    import geopandas as gpd
    import numpy as np
    import shapely

    from geotijian.report import _common as c

    rng = np.random.default_rng(seed)
    crs, x0, y0, size = "EPSG:32651", 330_000.0, 3_465_000.0, 21_000.0
    k = 17  # a 17 × 17 grid of units, 264 kept, each in the town of the nearest of 11 seeds
    ux, uy = np.meshgrid(np.arange(k), np.arange(k))
    ux, uy = ux.ravel()[:264], uy.ravel()[:264]
    cell = size / k
    gx, gy = np.meshgrid((np.arange(4) + 0.5) * k / 4, (np.arange(3) + 0.5) * k / 3)  # 11 of a 4 × 3 grid
    seeds = np.column_stack([gx.ravel(), gy.ravel()])[:11] + rng.uniform(-1.0, 1.0, (11, 2))
    town = np.argmin((ux[:, None] - seeds[:, 0]) ** 2 + (uy[:, None] - seeds[:, 1]) ** 2, axis=1)
    units = gpd.GeoDataFrame({
        "unit_id": [f"T{t:02d}-U{i:03d}" for i, t in enumerate(town)],
        "town_code": [f"T{t:02d}" for t in town],
        "population": rng.integers(5_000, 12_000, 264).astype(float), "area_ha": np.full(264, cell**2 / 1e4)},
        geometry=shapely.box(x0 + ux * cell, y0 + uy * cell, x0 + (ux + 1) * cell, y0 + (uy + 1) * cell), crs=crs)
    towns = units.dissolve("town_code").reset_index()[["town_code", "geometry"]]
    towns["name"] = [f"镇{i}" for i in range(len(towns))]
    boundary = gpd.GeoDataFrame({"boundary_id": ["B"], "name": ["嘉定区"]},
                                geometry=[shapely.union_all(units.geometry.values)], crs=crs)
    n = 23_700
    u = rng.integers(0, 264, n)
    cx = x0 + (ux[u] + rng.uniform(0.1, 0.9, n)) * cell
    cy = y0 + (uy[u] + rng.uniform(0.1, 0.9, n)) * cell
    homes = shapely.box(cx - 40, cy - 30, cx + 40, cy + 30)
    compounds = gpd.GeoDataFrame({"compound_id": [f"C{i:06d}" for i in range(n)], "name": [f"小区{i}" for i in range(n)],
                                  "population": rng.integers(50, 3000, n).astype(float),
                                  "unit_id": units["unit_id"].to_numpy()[u]}, geometry=homes, crs=crs)
    types = list(c.facility_catalogue()["code"][:14])
    radius = rng.choice([300.0, 500.0, 1000.0], len(types))
    missing = rng.random((n, len(types))) < 0.45
    hi, ti = np.nonzero(missing)
    gaps = gpd.GeoDataFrame({
        "home_id": [f"C{i:06d}" for i in hi], "home_kind": "compound", "unit_id": units["unit_id"].to_numpy()[u[hi]],
        "facility_type": np.array(types)[ti], "facility_name_zh": np.array(types)[ti],
        "walk_distance_m": radius[ti], "distance_m": radius[ti] * rng.uniform(1.0, 3.0, len(hi)),
        "population": rng.integers(50, 3000, n)[hi].astype(float)}, geometry=homes[hi], crs=crs)
    nf = 8_000
    facilities = gpd.GeoDataFrame({
        "facility_id": [f"F{i:05d}" for i in range(nf)], "type": rng.choice(types, nf),
        "name": [f"设施{i}" for i in range(nf)]},
        geometry=shapely.points(rng.uniform(x0, x0 + size, nf), rng.uniform(y0, y0 + size, nf)), crs=crs)
    npb = 3_600
    pu = rng.integers(0, 264, npb)
    problems = gpd.GeoDataFrame({
        "problem_id": [f"P{i:04d}@{units['unit_id'].iloc[j]}" for i, j in enumerate(pu)],
        "indicator_code": "cov_x", "name_zh": "覆盖率", "dimension": "宜居共建", "level": "unit",
        "area_id": units["unit_id"].to_numpy()[pu], "value": 80.0, "reference": 100.0, "gap": 20.0,
        "problem_class": rng.choice(["限时解决", "尽力解决", "长期谋划"], npb),
        "affected_population": 1000.0, "suggestion": "增设"}, geometry=units.geometry.to_numpy()[pu], crs=crs)
    return StudyData(name="jiading", crs=crs, boundary=boundary, towns=towns, units=units, compounds=compounds,
                     coverage_gaps=gaps, facilities=facilities, problems=problems)


_DRAWN_JS = """(() => {
  const maps = Object.keys(window).filter(k => window[k] instanceof L.Map).map(k => window[k]);
  let paths = 0;
  maps.forEach(m => m.eachLayer(l => { if (l instanceof L.Path) paths += 1; }));
  return new Promise(res => requestAnimationFrame(() => requestAnimationFrame(() =>
    res({t: performance.now(), paths: paths, dots: gtjDotLayers.reduce((n, l) => n + l.shown, 0),
         zoom: maps[0].getZoom(), size: maps[0].getSize(), bounds: maps[0].getBounds().toBBoxString(),
         per: gtjDotLayers.map(l => [l.shown, l._d.lat.length]),
         canvases: document.querySelectorAll('canvas.gtj-dots').length,
         towns: Array.from(document.querySelectorAll('.gtj-town a')).map(a => a.getAttribute('href')),
         nav: Array.from(document.querySelectorAll('.gtj-nav a')).map(a => a.getAttribute('href'))}))));
})()"""


_CLEAR_JS = """(() => {
  // the screen box of the units (every L.Polygon); which panels lie over it
  const m = Object.keys(window).map(k => window[k]).find(v => v instanceof L.Map);
  let b = null;
  m.eachLayer(l => { if (l instanceof L.Polygon) { b = b ? b.extend(l.getBounds()) : L.latLngBounds(l.getBounds().getSouthWest(), l.getBounds().getNorthEast()); } });
  const r = m.getContainer().getBoundingClientRect(), p = m.latLngToContainerPoint(b.getNorthWest()),
        q = m.latLngToContainerPoint(b.getSouthEast());
  const box = {left: r.left + p.x, top: r.top + p.y, right: r.left + q.x, bottom: r.top + q.y};
  const overlap = ['.gtj-legend', '.gtj-left', '.gtj-title', '.leaflet-control-layers'].filter(sel => {
    const e = document.querySelector(sel); if (!e) return false; const o = e.getBoundingClientRect();
    return o.left < box.right - 1 && o.right > box.left + 1 && o.top < box.bottom - 1 && o.bottom > box.top + 1; });
  // the legend (a <details>) folds to its title and opens again
  const g = document.querySelector('.gtj-legend'), head = g.querySelector('summary'), folds = [];
  head.click(); folds.push(!g.open && g.getBoundingClientRect().height < 40);  // its title alone
  head.click(); folds.push(!g.open);
  return {box: box, overlap: overlap, folds: folds};
})()"""


def _draw(cdp: CDP, path: Path, turn_on: str | None = None) -> tuple[dict, float]:
    """Navigate to ``path`` (then run ``turn_on``, a script turning layers on); the page's
    state two frames later (``on``: what ``turn_on`` returned), and the wall seconds."""
    cdp.events.clear()
    t0 = time.monotonic()
    cdp.call("Page.navigate", url=path.resolve().as_uri())
    cdp.wait_event("Page.loadEventFired", timeout=120)
    on = cdp.evaluate(turn_on) if turn_on else None
    state = cdp.evaluate(_DRAWN_JS)  # after load and two frames: overlays painted
    state["on"] = on
    return state, time.monotonic() - t0


def _click_link(cdp: CDP, selector: str, href: str) -> str:
    """Click the link ``selector`` with ``href`` as a user would; the URL it opened."""
    # scroll only a list that hides the link ('nearest'), then measure two frames later: Leaflet
    # puts a scrolled map container back at once (a link on the map moves back under the mouse)
    box = cdp.evaluate(f"""(() => {{ const a = Array.from(document.querySelectorAll({json.dumps(selector)}))
        .find(a => a.getAttribute('href') === {json.dumps(href)});
        a.scrollIntoView({{block: 'nearest', inline: 'nearest'}});
        return new Promise(res => requestAnimationFrame(() => requestAnimationFrame(() => {{
          const r = a.getBoundingClientRect(), x = r.x + r.width / 2, y = r.y + r.height / 2;
          res([x, y, document.elementFromPoint(x, y) === a]); }}))); }})()""")
    assert box[2], f"{href}: another element lies over the link at {box[:2]}"
    cdp.events.clear()
    for kind in ("mousePressed", "mouseReleased"):
        cdp.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)
    cdp.wait_event("Page.loadEventFired", timeout=120)
    return cdp.evaluate("location.href")


def test_district_map_is_small_and_draws_fast(browser, tmp_path):
    """A Jiading-size map: ≤ 15 MB, every overlay drawn in < 5 s from navigation (issue 15);
    its town maps open from it (a town's name on the map) and lead back to it."""
    from geotijian.report import town_maps

    study = district_study()
    path = maps.save_problem_map(maps.problem_map(study, basemap="blank", nav=town_maps.district_nav(study)),
                                 tmp_path / "problem_map.html")
    towns = town_maps.save_town_maps(study, tmp_path, basemap="blank")
    size_mb = path.stat().st_size / 1e6
    assert size_mb <= 15.0, f"district map {size_mb:.1f} MB"
    # facilities and one gap type turned on after load, as a reader would: drawn within the time too
    state, wall = _draw(browser, path, turn_on=_SOME_ON_JS)
    errs = _errors(browser)
    assert errs["exceptions"] == [] and errs["console"] == [], errs
    from geotijian.report import _common as c

    n_gap_homes = study.coverage_gaps["home_id"].nunique()
    first_type = c.ordered_types(study.coverage_gaps["facility_type"])[0]  # the gap layer turned on
    shown = int((study.coverage_gaps["facility_type"] == first_type).sum())
    assert state["on"] >= 2  # the facility layers and one gap type, on top of what loads on
    assert state["dots"] >= shown + len(study.facilities), (state["per"], state["size"], state["bounds"])  # and every facility
    assert state["canvases"] >= 2 and state["paths"] >= 264, state
    load = os.getloadavg()[0]
    print(f"district map {size_mb:.1f} MB ({n_gap_homes:,} homes with a gap, "
          f"{len(study.coverage_gaps):,} home × type gaps): drawn {state['t'] / 1000:.2f} s after "
          f"navigation (performance.now), {wall:.2f} s wall including the DevTools round trips; "
          f"{state['dots']:,} points, {state['paths']:,} paths; load {load:.1f}")
    # the target on a quiet machine; a machine shared by many jobs may set a looser
    # limit in GEOTIJIAN_MAP_DRAW_LIMIT_S (the figure is printed either way)
    limit = float(os.environ.get("GEOTIJIAN_MAP_DRAW_LIMIT_S", "5"))
    assert state["t"] < limit * 1000, f"overlays drawn {state['t'] / 1000:.1f} s after navigation"

    # the district is fitted clear of the title, the legend, the layer control and the town
    # list, and the legend folds
    clear = browser.evaluate(_CLEAR_JS)
    assert clear["overlap"] == [], clear
    assert clear["folds"] == [True, False], clear

    # every town has a map, reached from its name on the district map and from the list
    rel = sorted(p.relative_to(tmp_path).as_posix() for p in towns)
    assert sorted(state["towns"]) == rel and sorted(state["nav"]) == rel, state
    url = _click_link(browser, ".gtj-town a", rel[3])
    assert url == towns[3].resolve().as_uri()
    tstate = browser.evaluate(_DRAWN_JS)
    assert tstate["nav"][0] == "../problem_map.html" and len(tstate["nav"]) == len(towns)
    assert tstate["paths"] > 1000, tstate  # its compounds, units and problems
    back = _click_link(browser, ".gtj-nav a", "../problem_map.html")
    assert back == path.resolve().as_uri()
    sizes = [p.stat().st_size / 1e6 for p in towns]
    tstate, twall = _draw(browser, towns[3], turn_on=_SOME_ON_JS)
    assert _errors(browser)["exceptions"] == []
    print(f"{len(towns)} town maps {min(sizes):.1f}-{max(sizes):.1f} MB; {towns[3].name} drawn "
          f"{tstate['t'] / 1000:.2f} s after navigation ({tstate['paths']:,} paths, {tstate['dots']:,} points)")
    assert max(sizes) <= 15.0 and tstate["t"] < limit * 1000


@pytest.mark.parametrize("size", [(1400, 900), (1280, 800), (1100, 800), (900, 600)])
def test_map_fits_a_small_window(browser, tmp_path, size):
    """At 1400 × 900 the panels are open and the legend stays inside the window; at 1280 × 800
    and 1100 × 800 (laptops) the side table starts folded where it would leave the study under
    40 % of the width (at 1100 px this sample's does); at 900 × 600 (a typical embed) the
    legend, the side table and the layer control start folded and cover under 10 % of the
    window."""
    w, h = size
    browser.call("Emulation.setDeviceMetricsOverride", width=w, height=h, deviceScaleFactor=1, mobile=False)
    study = make_study()
    path = maps.save_problem_map(maps.problem_map(study, basemap="blank"), tmp_path / "m.html")
    _open(browser, path)
    r = browser.evaluate(_RECTS_JS)
    assert (r["w"], r["h"]) == (w, h)

    def area(b):
        return max(0, min(b[2], w) - max(b[0], 0)) * max(0, min(b[3], h) - max(b[1], 0)) if b else 0

    for key in ("legend", "side", "control", "title"):
        b = r[key]
        assert b and b[0] >= 0 and b[1] >= 0 and b[2] <= w and b[3] <= h, (key, b)
    covered = sum(area(r[k]) for k in ("legend", "side", "control", "title")) / (w * h)
    if w < 1000:
        assert r["legendOpen"] is False and r["controlExpanded"] is False
        assert covered < 0.10, covered
    else:
        assert r["legendOpen"] is True and r["controlExpanded"] is True
    # an open side table leaves the study at least 40 % of the width beside the right panels
    right = max(r["legend"][2] - r["legend"][0], r["control"][2] - r["control"][0]) + 16
    if r["sideOpen"]:
        assert w - (r["side"][2] + 6) - right >= 0.4 * w, r
    if size == (1100, 800):
        assert r["sideOpen"] is False and r["legendOpen"] is True, r
    print(size, {k: r[k] for k in ("side", "sideOpen", "legend", "control")})
    assert _errors(browser)["exceptions"] == []
    shot = browser.call("Page.captureScreenshot", format="png")
    out = ROOT / "outputs" / f"browser_problem_map_{w}x{h}.png"
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(base64.b64decode(shot["data"]))
    print(f"screenshot {out}: panels cover {covered:.1%} of the window")
