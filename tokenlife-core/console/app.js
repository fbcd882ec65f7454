// tokenlife console: every call goes to the admin API next to this page, with the admin
// key as a Bearer header. No cookie, no inline script, no other origin.
'use strict';
(function () {
  const KEY = 'tokenlife.adminKey';
  // The admin API's root: this page is `<root>/console`.
  const ROOT = location.pathname.replace(/\/console\/?$/, '');
  const $ = (id) => document.getElementById(id);
  const WINDOW = 120; // seconds of rate kept for the chart
  const series = []; // {at, accepted, rejected}
  const markers = []; // {at, what}
  let stream = null; // AbortController of the event stream
  let auditNext = null;

  function key() { return sessionStorage.getItem(KEY); }

  async function api(method, path, opts) {
    opts = opts || {};
    const headers = { Authorization: 'Bearer ' + key() };
    let body;
    if (opts.json !== undefined) { headers['Content-Type'] = 'application/json'; body = JSON.stringify(opts.json); }
    if (opts.form !== undefined) { headers['Content-Type'] = 'application/x-www-form-urlencoded'; body = new URLSearchParams(opts.form).toString(); }
    const res = await fetch(ROOT + path, { method, headers, body, cache: 'no-store', credentials: 'omit' });
    if (res.status === 401) { logout('The admin key was refused.'); throw new Error('unauthorized'); }
    let data = null;
    const text = await res.text();
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
    return { status: res.status, ok: res.ok, data };
  }

  function describe(r) {
    if (r.ok) return 'Done (' + r.status + ').';
    const d = r.data || {};
    return 'Refused (' + r.status + '): ' + (d.error_description || d.error || '');
  }

  function text(el, value) { el.textContent = value; }

  function el(tag, cls, value) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (value !== undefined) e.textContent = value;
    return e;
  }

  function time(at) { return new Date(at * 1000).toLocaleTimeString(); }

  // --- login ------------------------------------------------------------------------

  async function login(candidate) {
    sessionStorage.setItem(KEY, candidate);
    try {
      const r = await api('GET', '/keysets');
      if (!r.ok) throw new Error(describe(r));
    } catch (e) {
      sessionStorage.removeItem(KEY);
      text($('login-error'), e.message === 'unauthorized' ? 'The admin key was refused.' : e.message);
      return;
    }
    text($('login-error'), '');
    $('login').hidden = true;
    $('nav').hidden = false;
    $('logout').hidden = false;
    show(location.hash.slice(1) || 'overview');
    connect();
  }

  function logout(why) {
    sessionStorage.removeItem(KEY);
    if (stream) stream.abort();
    stream = null;
    document.querySelectorAll('.view').forEach((v) => { v.hidden = true; });
    $('nav').hidden = true;
    $('logout').hidden = true;
    $('login').hidden = false;
    text($('login-error'), why || '');
    setLive(false);
  }

  function setLive(on) {
    const b = $('live');
    b.classList.toggle('live', on);
    text(b, on ? 'live' : 'offline');
  }

  // --- views ------------------------------------------------------------------------

  const loaders = { keysets: loadKeysets, fleet: loadFleet, overview: () => {}, tokens: () => {}, audit: () => {} };

  function show(view) {
    if (!loaders[view]) view = 'overview';
    document.querySelectorAll('.view').forEach((v) => { v.hidden = v.id !== view; });
    document.querySelectorAll('nav a').forEach((a) => {
      if (a.dataset.view === view) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    });
    loaders[view]();
  }

  // --- live stream (Server-Sent Events over fetch: EventSource cannot send a header) --

  async function connect() {
    if (stream || !key()) return;
    stream = new AbortController();
    try {
      const res = await fetch(ROOT + '/console/events', {
        headers: { Authorization: 'Bearer ' + key(), Accept: 'text/event-stream' },
        signal: stream.signal, cache: 'no-store', credentials: 'omit',
      });
      if (res.status === 401) { stream = null; logout('The admin key was refused.'); return; }
      if (!res.ok || !res.body) throw new Error('stream ' + res.status);
      setLive(true);
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          handle(buf.slice(0, cut));
          buf = buf.slice(cut + 2);
        }
      }
    } catch (e) {
      if (e.name === 'AbortError') return;
    }
    setLive(false);
    stream = null;
    if (key()) setTimeout(connect, 3000);
  }

  function handle(frame) {
    let event = 'message';
    let data = '';
    frame.split('\n').forEach((line) => {
      if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data += line.slice(6);
    });
    if (!data) return;
    const d = JSON.parse(data);
    if (event === 'hello' || event === 'tick') tick(event, d);
    else if (event === 'timeline') timeline(d);
    else if (event === 'alert') alert(d);
  }

  function tick(event, d) {
    text($('version'), 'v' + d.version);
    const t = d.totals;
    if (t.accepted > 0) text($('hit-ratio'), Math.round((100 * t.cache_hits) / t.accepted) + ' %');
    if (event !== 'tick') return;
    const r = d.rate;
    const rejected = r.expired + r.revoked + r.bad_key + r.rejected;
    text($('rate-accepted'), r.accepted);
    text($('rate-rejected'), rejected);
    text($('rate-badkey'), r.bad_key);
    series.push({ at: d.at, accepted: r.accepted, rejected });
    while (series.length > 0 && series[0].at <= d.at - WINDOW) series.shift();
    draw();
  }

  function timeline(e) {
    markers.push({ at: e.at, what: e.what });
    while (markers.length > 64) markers.shift();
    const li = el('li');
    li.append(el('span', 'what', e.what), ' ', el('span', '', (e.version ? 'v' + e.version + ' ' : '') + e.detail), ' ', el('time', '', time(e.at)));
    $('timeline').prepend(li);
    while ($('timeline').children.length > 128) $('timeline').lastChild.remove();
    draw();
    if (!$('keysets').hidden) loadKeysets();
  }

  function alert(e) {
    const id = 'alert-' + e.what + '-' + e.at;
    let li = document.getElementById(id);
    if (!li) { li = el('li'); li.id = id; $('alerts').prepend(li); }
    li.replaceChildren(el('span', 'alert-what', e.what), ' ', e.count > 1 ? '×' + e.count + ' ' : '', e.detail, ' ', el('time', '', time(e.at)));
    while ($('alerts').children.length > 128) $('alerts').lastChild.remove();
  }

  function draw() {
    const svg = $('chart');
    const title = svg.querySelector('title');
    svg.replaceChildren(title);
    if (series.length === 0) return;
    const W = 600; const H = 160; const pad = 4;
    const last = series[series.length - 1].at;
    // The last two minutes, or the time since the stream opened (at least 20 s).
    const span = Math.min(WINDOW, Math.max(20, last - series[0].at + 1));
    const first = last - span + 1;
    const max = Math.max(1, ...series.map((p) => Math.max(p.accepted, p.rejected)));
    const x = (at) => pad + ((at - first) / (span - 1)) * (W - 2 * pad);
    const y = (v) => H - pad - (v / max) * (H - 2 * pad);
    const NS = 'http://www.w3.org/2000/svg';
    for (const [field, cls] of [['accepted', 'line-accepted'], ['rejected', 'line-rejected']]) {
      const path = document.createElementNS(NS, 'polyline');
      path.setAttribute('class', cls);
      path.setAttribute('points', series.map((p) => x(p.at).toFixed(1) + ',' + y(p[field]).toFixed(1)).join(' '));
      svg.append(path);
    }
    for (const m of markers) {
      if (m.at < first) continue;
      const line = document.createElementNS(NS, 'line');
      line.setAttribute('class', 'marker');
      line.setAttribute('x1', x(m.at)); line.setAttribute('x2', x(m.at));
      line.setAttribute('y1', 0); line.setAttribute('y2', H);
      const t = document.createElementNS(NS, 'title');
      t.textContent = m.what;
      line.append(t);
      svg.append(line);
    }
  }

  // --- keysets ----------------------------------------------------------------------

  async function loadKeysets() {
    const [ks, ro] = await Promise.all([api('GET', '/keysets'), api('GET', '/keysets/rollout')]);
    const body = $('versions');
    body.replaceChildren();
    const quarantined = (ks.data && ks.data.quarantined) || [];
    ((ks.data && ks.data.keysets) || []).slice().reverse().forEach((k) => {
      const tr = el('tr');
      const state = k.current ? 'current' : quarantined.includes(k.version) ? 'quarantined' : '';
      tr.append(el('td', '', 'v' + k.version), el('td', '', k.label || ''), el('td', '', (k.kids || []).join(', ')), el('td', '', state));
      const td = el('td');
      if (!k.current) {
        const b = el('button', '', 'Roll back to v' + k.version);
        b.type = 'button';
        b.addEventListener('click', () => act('Roll back to v' + k.version + '?', 'POST', '/keysets/rollback/' + k.version));
        td.append(b);
      }
      if (quarantined.includes(k.version)) {
        const b = el('button', '', 'Release v' + k.version);
        b.type = 'button';
        b.addEventListener('click', () => act('Release the quarantine of v' + k.version + '?', 'POST', '/keysets/release/' + k.version));
        td.append(' ', b);
      }
      tr.append(td);
      body.append(tr);
    });
    text($('rollout'), JSON.stringify(ro.data, null, 2));
  }

  async function act(question, method, path, opts) {
    if (!window.confirm(question)) return;
    const r = await api(method, path, opts);
    text($('keysets-result'), describe(r));
    loadKeysets();
  }

  // --- fleet and providers ----------------------------------------------------------

  async function loadFleet() {
    const [r, f] = await Promise.all([api('GET', '/keysets/remote'), api('GET', '/fleet')]);
    text($('remote'), r.status === 404 ? 'No remote key source is configured (the gateway\'s --issuer).' : JSON.stringify(r.data, null, 2));
    text($('fleet-status'), f.status === 404 ? 'This node is not in a fleet (the gateway\'s --redis).' : JSON.stringify(f.data, null, 2));
  }

  // --- audit ------------------------------------------------------------------------

  async function search(more) {
    const q = new URLSearchParams();
    for (const f of ['subject', 'jti', 'action']) {
      const v = $('audit-' + f).value.trim();
      if (v) q.set(f, v);
    }
    // A window always: without a subject, jti or token the store answers a month at most.
    q.set('since', String(Math.floor(Date.now() / 1000) - Number($('audit-window').value) * 3600));
    if (more && auditNext) q.set('after', auditNext);
    const r = await api('GET', '/audit?' + q.toString());
    if (r.status === 404) { text($('audit-note'), 'No audit store is configured: start the gateway with --audit-db postgres://… to keep and query the trail.'); return; }
    if (!r.ok) { text($('audit-note'), describe(r)); $('audit-rows').replaceChildren(); $('audit-more').hidden = true; return; }
    text($('audit-note'), '');
    const body = $('audit-rows');
    if (!more) body.replaceChildren();
    (r.data.rows || []).forEach((row) => {
      const tr = el('tr');
      tr.append(el('td', '', new Date(row.at * 1000).toISOString()), el('td', '', row.action), el('td', '', row.outcome + (row.reason ? ' (' + row.reason + ')' : '')),
        el('td', '', row.subject || ''), el('td', '', row.fingerprint || ''), el('td', '', row.keyset_version || ''),
        el('td', '', row.detail == null ? '' : typeof row.detail.text === 'string' ? row.detail.text : JSON.stringify(row.detail)));
      body.append(tr);
    });
    auditNext = r.data.next || null;
    $('audit-more').hidden = !auditNext;
  }

  // --- wiring -----------------------------------------------------------------------

  document.addEventListener('DOMContentLoaded', () => {
    $('login-form').addEventListener('submit', (e) => { e.preventDefault(); login($('admin-key').value); $('admin-key').value = ''; });
    $('logout').addEventListener('click', () => logout());
    window.addEventListener('hashchange', () => { if (key()) show(location.hash.slice(1)); });
    $('promote').addEventListener('click', () => act('Promote the candidate to current?', 'POST', '/keysets/promote'));
    $('abort').addEventListener('click', () => act('Abort the rollout (drop the candidate)?', 'POST', '/keysets/abort'));
    $('set-share').addEventListener('click', () => act('Set the canary share to ' + $('share').value + ' %?', 'POST', '/keysets/share?share=' + encodeURIComponent($('share').value)));
    $('stage-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const q = new URLSearchParams({ mode: $('stage-mode').value, share: $('stage-share').value });
      if ($('stage-label').value) q.set('label', $('stage-label').value);
      const jwks = $('stage-jwks').value;
      let parsed;
      try { parsed = JSON.parse(jwks); } catch (err) { text($('keysets-result'), 'The JWKS is not JSON.'); return; }
      act('Stage this keyset as a ' + $('stage-mode').value + '?', 'POST', '/keysets/stage?' + q.toString(), { json: parsed });
    });
    $('revoke-key-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const kid = $('revoke-kid').value.trim();
      act('Revoke key ' + kid + ' as compromised? Every token it signed is refused, for good.', 'POST', '/keysets/keys/' + encodeURIComponent(kid) + '/revoke');
    });
    $('inspect-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const pasted = $('token-input').value.trim();
      if (pasted.split('.').length !== 3) {
        // Not a JWT: a jti or a subject. Its records from the trail, by either.
        text($('token-claims'), 'Not a token: looked up as a jti and as a subject.');
        const [byJti, bySub] = await Promise.all([api('GET', '/audit?jti=' + encodeURIComponent(pasted)), api('GET', '/audit?subject=' + encodeURIComponent(pasted))]);
        if (byJti.status === 404) { text($('token-trail'), 'No audit store is configured: start the gateway with --audit-db to look up a jti or subject.'); return; }
        const rows = [].concat(byJti.ok ? byJti.data.rows || [] : [], bySub.ok ? bySub.data.rows || [] : []);
        text($('token-trail'), rows.map((row) => new Date(row.at * 1000).toISOString() + '  ' + row.action + '  ' + row.outcome + (row.subject ? '  ' + row.subject : '')).join('\n') || 'No records.');
        return;
      }
      const r = await api('POST', '/introspect', { form: { token: pasted } });
      text($('token-claims'), JSON.stringify(r.data, null, 2));
      if (r.ok && r.data && r.data.jti) { $('revoke-by').value = 'jti'; $('revoke-value').value = r.data.jti; }
      // Its life from the audit trail, when the store is configured: the records of its
      // jti (issue, revocation), else of its subject.
      const d = r.data || {};
      const q = d.jti ? 'jti=' + encodeURIComponent(d.jti) : d.sub ? 'subject=' + encodeURIComponent(d.sub) : null;
      if (!q) { text($('token-trail'), ''); return; }
      const trail = await api('GET', '/audit?' + q);
      text($('token-trail'), trail.status === 404 ? 'No audit store is configured: start the gateway with --audit-db to see this token\'s life.'
        : trail.ok ? (trail.data.rows || []).map((row) => new Date(row.at * 1000).toISOString() + '  ' + row.action + '  ' + row.outcome).join('\n') || 'No records yet.' : describe(trail));
    });
    $('revoke-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const by = $('revoke-by').value;
      const value = $('revoke-value').value.trim();
      if (!window.confirm('Revoke by ' + by + ' ' + value + '?')) return;
      const r = await api('POST', '/revocations/' + by, { json: { [by]: value } });
      text($('tokens-result'), describe(r));
    });
    $('audit-form').addEventListener('submit', (e) => { e.preventDefault(); search(false); });
    $('audit-more').addEventListener('click', () => search(true));
    if (key()) login(key()); else $('login').hidden = false;
  });
})();
