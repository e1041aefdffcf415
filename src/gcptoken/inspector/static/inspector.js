// gcptoken inspect: sends the token only to the server that served this page (same origin).
'use strict';
(() => {
  const $ = id => document.getElementById(id);
  const base = location.pathname.replace(/\/$/, '');
  let last = null;
  let timer = null;

  const post = (path, body) => fetch(`${base}/api/${path}`, {
    method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body),
  }).then(r => r.json());

  const cell = (row, value, code) => {
    const td = document.createElement('td');
    if (code) { const c = document.createElement('code'); c.textContent = value; td.appendChild(c); } else { td.textContent = value; }
    row.appendChild(td);
  };

  const rows = (table, entries) => {
    const body = $(table).querySelector('tbody');
    body.replaceChildren();
    for (const cells of entries) {
      const tr = document.createElement('tr');
      cells.forEach((value, i) => cell(tr, value, i === 1 && table !== 'times'));
      body.appendChild(tr);
    }
  };

  const show = value => (typeof value === 'string' ? value : JSON.stringify(value));
  const TIMES = ['iat', 'nbf', 'auth_time', 'exp'];

  const ago = seconds => {
    const s = Math.abs(Math.round(seconds));
    const text = s >= 3600 ? `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
      : s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
    return seconds >= 0 ? `in ${text}` : `${text} ago`;
  };

  const renderTimes = () => {
    if (!last || !last.claims) return;
    const now = Date.now() / 1000;
    rows('times', TIMES.filter(n => typeof last.claims[n] === 'number').map(n => {
      const at = new Date(last.claims[n] * 1000);
      return [n, at.toISOString().replace('.000Z', 'Z'), at.toLocaleString(), ago(last.claims[n] - now)];
    }));
  };

  const render = result => {
    last = result;
    $('result').hidden = false;
    $('kind').textContent = result.kind;
    $('summary').textContent = result.summary;
    const v = result.verdict || {};
    const verdict = $('verdict');
    verdict.className = !v.checked ? 'unchecked' : v.valid ? 'valid' : 'invalid';
    verdict.textContent = !v.checked ? `not verified: ${v.message}`
      : v.valid ? `valid — checked with ${v.keys}${v.audience_checked ? ', audience checked' : ' (audience: the token\'s own; give the expected one to check it)'}`
        : `invalid (${v.reason}): ${v.message}`;
    $('warnings').replaceChildren(...(result.warnings || []).map(w => { const li = document.createElement('li'); li.textContent = w; return li; }));
    $('tokeninfo-box').hidden = !result.opaque;
    $('tokeninfo-result').textContent = '';
    rows('header', Object.entries(result.header || {}).map(([k, value]) => [k, show(value)]));
    rows('claims', Object.entries(result.claims || {}).map(([k, value]) => [k, show(value), (result.explanations || {})[k] || '']));
    renderTimes();
  };

  const inspect = () => {
    const token = $('token').value.trim();
    if (!token) return;
    post('inspect', {token, audience: $('audience').value}).then(result => {
      if (result.error) { $('result').hidden = false; $('kind').textContent = result.error; return; }
      render(result);
    });
  };

  const copy = text => {
    $('copied').value = text;
    if (navigator.clipboard) navigator.clipboard.writeText(text).catch(() => {});
  };

  $('form').addEventListener('submit', event => { event.preventDefault(); inspect(); });
  $('token').addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(inspect, 300); });
  $('audience').addEventListener('change', inspect);
  $('copy-curl').addEventListener('click', () => {
    const token = $('token').value.trim().replace(/^(Authorization:\s*)?Bearer\s+/i, '');
    const aud = $('audience').value.trim() || (last && last.claims && String(last.claims.aud || '')) || 'https://SERVICE';
    const url = /^https?:\/\//.test(aud) ? aud : 'https://SERVICE';
    copy(`curl -H "Authorization: Bearer ${token}" ${url}`);
  });
  $('copy-claims').addEventListener('click', () => copy(JSON.stringify((last && last.claims) || {}, null, 2)));
  $('tokeninfo').addEventListener('click', () => {
    $('tokeninfo-result').textContent = 'asking Google…';
    post('tokeninfo', {token: $('token').value.trim()}).then(r => {
      $('tokeninfo-result').textContent = r.error ? `tokeninfo: ${r.error}` : JSON.stringify(r.tokeninfo, null, 2);
    });
  });
  setInterval(renderTimes, 1000);
  post('initial', {token: ''}).then(r => { if (r && r.token) { $('token').value = r.token; inspect(); } });
})();
