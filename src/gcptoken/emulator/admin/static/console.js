// The emulator console: every action is a call to the emulator's own admin API (same origin).
'use strict';
(() => {
  const $ = id => document.getElementById(id);
  // State-changing calls always go as JSON (the admin API takes nothing else); a DELETE may go bare.
  const api = (method, path, body) => {
    const json = body !== undefined || (method !== 'GET' && method !== 'DELETE');
    return fetch(`/emulator/v1/${path}`, {
      method, headers: json ? {'Content-Type': 'application/json'} : {},
      body: json ? JSON.stringify(body === undefined ? {} : body) : undefined,
    }).then(handle);
  };
  const handle = async r => {
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error((data.error && data.error.message) || `HTTP ${r.status}`);
    return data;
  };
  const say = (text, error) => { $('status').textContent = text; $('status').className = error ? 'note error' : 'note'; };
  const fail = e => say(e.message, true);
  const el = (tag, text, attrs) => {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    return node;
  };
  const button = (label, action) => { const b = el('button', label, {type: 'button'}); b.addEventListener('click', action); return b; };
  const output = (text, filename) => { $('output').value = text; $('output').dataset.filename = filename || 'token.txt'; };
  const json = value => JSON.stringify(value, null, 2);

  // -- the request log ------------------------------------------------------------------------------
  const detail = entry => {
    const d = entry.detail || {};
    if (d.assertion) return `assertion ${JSON.stringify(d.assertion.claims)}`;  // decoded: never its signature
    return Object.entries(d).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
  };
  // A long detail (a JWT's claims, an IAM call's delegates) shows one line cut with "…" and opens
  // in place; which ones are open survives the log's refresh every second.
  const LONG_DETAIL = 90;
  const opened = new Set();
  const detailCell = (text, key) => {
    const td = el('td', undefined, {class: 'detail'});
    if (text.length <= LONG_DETAIL) { td.textContent = text; return td; }
    const more = el('details');
    more.open = opened.has(key);
    more.addEventListener('toggle', () => { if (more.open) opened.add(key); else opened.delete(key); });
    const summary = el('summary', undefined, {title: 'show all'});
    summary.appendChild(el('span', text, {class: 'preview'}));
    more.append(summary, el('div', text, {class: 'full'}));
    td.appendChild(more);
    return td;
  };
  const refreshLog = () => {
    if ($('log-pause').checked) return;
    api('GET', 'requests').then(({requests}) => {
      const filter = $('log-filter').value.trim().toLowerCase();
      const body = $('log').querySelector('tbody');
      const own = entry => !$('log-own').checked && (entry.path.startsWith('/emulator/ui')
        || (entry.method === 'GET' && ['/emulator/v1/requests', '/emulator/v1/faults'].includes(entry.path)));
      // A path the emulator does not serve is marked, so a client's call to a missing endpoint shows at once.
      const rows = requests.filter(entry => !own(entry)).slice(-300).reverse().map(entry => {
        const note = entry.notEmulated ? ['not emulated', detail(entry)].filter(Boolean).join(' ') : detail(entry);
        const cells = [new Date(entry.time * 1000).toLocaleTimeString(), entry.method, entry.path, String(entry.status), note];
        return {cells, gap: Boolean(entry.notEmulated), key: `${entry.time} ${entry.method} ${entry.path}`};
      }).filter(({cells}) => !filter || cells.join(' ').toLowerCase().includes(filter));
      body.replaceChildren(...rows.map(({cells, gap, key}) => {
        const tr = el('tr', undefined, gap ? {class: 'not-emulated'} : {});
        cells.slice(0, 4).forEach((c, i) => tr.appendChild(el('td', c, i === 3 ? {class: `s${c[0]}`} : {title: c})));
        tr.appendChild(detailCell(cells[4], key));
        return tr;
      }));
    }).catch(() => {});
  };
  $('log-clear').addEventListener('click', () => api('DELETE', 'requests').then(refreshLog).catch(fail));
  $('log-filter').addEventListener('input', refreshLog);

  // -- service accounts, keys, bindings -----------------------------------------------------------
  const download = (name, text) => {
    const link = el('a', '', {href: URL.createObjectURL(new Blob([text], {type: 'application/json'})), download: name});
    document.body.appendChild(link); link.click(); link.remove();
  };
  const refreshAccounts = () => api('GET', 'serviceAccounts').then(({accounts}) => {
    const body = $('accounts').querySelector('tbody');
    body.replaceChildren(...accounts.map(a => {
      const tr = el('tr');
      tr.appendChild(el('td', a.email));
      const keys = el('td');
      a.keyIds.forEach(kid => {
        keys.appendChild(el('span', `${kid.slice(0, 12)}… `));
        keys.appendChild(button(`Delete key ${kid.slice(0, 6)}`, () => api('DELETE', `serviceAccounts/${a.email}/keys/${kid}`)
          .then(() => { say(`deleted key ${kid}`); refreshAccounts(); }).catch(fail)));
      });
      tr.appendChild(keys);
      const actions = el('td');
      actions.appendChild(button('New key file', () => api('POST', `serviceAccounts/${a.email}/keys`).then(key => {
        output(json(key), `${a.email.split('@')[0]}-key.json`); download(`${a.email.split('@')[0]}-key.json`, json(key));
        say(`new key for ${a.email}: downloaded, and in Output`); refreshAccounts();
      }).catch(fail)));
      tr.appendChild(actions);
      return tr;
    }));
    const select = $('binding-account');
    const chosen = select.value;
    select.replaceChildren(...accounts.map(a => el('option', a.email, {value: a.email})));
    if (chosen) select.value = chosen;
    const uploading = $('upload-account');
    const target = uploading.value;
    uploading.replaceChildren(...accounts.map(a => el('option', a.email, {value: a.email})));
    if (target) uploading.value = target;
    const delegating = $('delegation-account');
    const picked = delegating.value;
    delegating.replaceChildren(...accounts.map(a => el('option', a.email, {value: a.email})));
    if (picked) delegating.value = picked;
    refreshBindings(); refreshDelegations();
  }).catch(fail);
  const refreshBindings = () => {
    const email = $('binding-account').value;
    if (!email) return;
    api('GET', `serviceAccounts/${email}/tokenCreators`).then(({members}) => {
      $('bindings').replaceChildren(...members.map(m => {
        const li = el('li', `${m} may act as ${email} `);
        li.appendChild(button('Revoke', () => api('DELETE', `serviceAccounts/${email}/tokenCreators/${encodeURIComponent(m)}`)
          .then(refreshBindings).catch(fail)));
        return li;
      }));
    }).catch(fail);
  };
  $('binding-account').addEventListener('change', refreshBindings);

  // Domain-wide delegation: client id (the account's unique id) -> the scopes granted for any user.
  const refreshDelegations = () => api('GET', 'domainWideDelegation').then(({grants}) => {
    $('delegations').tBodies[0].replaceChildren(...grants.map(g => {
      const row = el('tr');
      [g.clientId, g.serviceAccount || '', g.scopes.join(' ')].forEach(v => row.appendChild(el('td', v)));
      const cell = el('td');
      cell.appendChild(button('Delete', () => api('DELETE', `domainWideDelegation/${g.clientId}`)
        .then(refreshDelegations).catch(fail)));
      row.appendChild(cell);
      return row;
    }));
  });
  $('delegation').addEventListener('submit', e => {
    e.preventDefault();
    const scopes = $('delegation-scopes').value.split(/[\s,]+/).filter(Boolean);
    api('PUT', `domainWideDelegation/${$('delegation-account').value}`, {scopes})
      .then(() => { say(`authorized ${$('delegation-account').value}`); refreshDelegations(); }).catch(fail);
  });
  // Upload a certificate: its public key becomes one of the account's keys (IAM keys:upload's rules).
  $('key-upload').addEventListener('submit', async e => {
    e.preventDefault();
    const email = $('upload-account').value;
    const file = $('upload-file').files[0];
    try {
      const certificate = file ? await file.text() : $('upload-pem').value;
      const key = await api('POST', `serviceAccounts/${email}/keys:upload`, {certificate});
      const kid = key.name.split('/').pop();
      output(kid, 'private_key_id.txt');
      say(`uploaded key ${kid} to ${email}: use it as private_key_id`);
      $('upload-file').value = ''; $('upload-pem').value = ''; refreshAccounts();
    } catch (error) { fail(error); }
  });
  $('sa-create').addEventListener('submit', e => {
    e.preventDefault();
    api('POST', 'serviceAccounts', {accountId: $('sa-id').value.trim(), displayName: $('sa-name').value})
      .then(a => { say(`created ${a.email}`); $('binding-account').value = ''; refreshAccounts(); }).catch(fail);
  });
  $('binding').addEventListener('submit', e => {
    e.preventDefault();
    const email = $('binding-account').value;
    api('POST', `serviceAccounts/${email}/tokenCreators`, {member: $('binding-member').value.trim(), role: $('binding-role').value})
      .then(() => { say(`granted ${$('binding-member').value} on ${email}`); refreshBindings(); }).catch(fail);
  });

  // -- users and OAuth clients ---------------------------------------------------------------------
  const refreshClients = () => api('GET', 'oauthClients').then(({clients}) => {
    $('clients').querySelector('tbody').replaceChildren(...clients.map(c => {
      const tr = el('tr'); [c.clientId, c.kind, c.name].forEach(v => tr.appendChild(el('td', v))); return tr;
    }));
  }).catch(fail);
  $('user-create').addEventListener('submit', e => {
    e.preventDefault();
    api('POST', 'users', {email: $('user-email').value.trim()})
      .then(file => { output(json(file), 'authorized-user.json'); say(`user ${$('user-email').value}: credentials in Output`); })
      .catch(fail);
  });
  $('client-create').addEventListener('submit', e => {
    e.preventDefault();
    api('POST', 'oauthClients', {kind: $('client-kind').value, name: $('client-name').value})
      .then(c => { output(json(c.installed ? {installed: c.installed} : c), 'client.json'); say(`registered ${c.clientId}`); refreshClients(); })
      .catch(fail);
  });

  // -- pools and providers --------------------------------------------------------------------------
  const refreshProviders = () => api('GET', 'providers').then(({providers}) => {
    $('providers').querySelector('tbody').replaceChildren(...providers.map(p => {
      const tr = el('tr');
      const kind = `${p.workforce ? 'workforce' : 'workload'}, ${p.aws ? 'AWS' : p.x509 ? 'X.509' : 'OIDC'}`;
      [p.audience, kind, JSON.stringify(p.attributeMapping)].forEach(v => tr.appendChild(el('td', v)));
      return tr;
    }));
  }).catch(fail);
  $('provider-create').addEventListener('submit', async e => {
    e.preventDefault();
    const kind = $('provider-kind').value;
    const body = {poolId: $('provider-pool').value.trim(), providerId: $('provider-id').value.trim()};
    try {
      if (kind === 'aws') body.awsAccountId = (await api('GET', 'aws')).accountId;
      const created = await api('POST', kind === 'workforce' ? 'workforcePools/providers' : 'workloadIdentityPools/providers', body);
      say(`created ${created.audience}`); refreshProviders();
    } catch (error) { fail(error); }
  });

  // -- signing keys ---------------------------------------------------------------------------------
  const refreshInfo = () => api('GET', 'info').then(info => {
    $('about').textContent = `${info.baseUrl} · project ${info.projectId} (${info.projectNumber}) · default account ${info.defaultServiceAccount}`;
    $('signing').replaceChildren(...info.signingKeyIds.map(kid => {
      const li = el('li', `${kid}${kid === info.signingKid ? ' (signing)' : ''} `);
      if (kid !== info.signingKid) li.appendChild(button('Retire', () => api('DELETE', `signingKeys/${kid}`).then(refreshInfo).catch(fail)));
      return li;
    }));
  }).catch(fail);
  $('rotate').addEventListener('click', () => api('POST', 'signingKeys:rotate', {}).then(r => { say(`published ${r.kid || 'a new key'}`); refreshInfo(); }).catch(fail));
  $('promote').addEventListener('click', () => api('POST', 'signingKeys:promote', {}).then(refreshInfo).catch(fail));

  // -- faults ---------------------------------------------------------------------------------------
  const refreshFaults = () => api('GET', 'faults').then(({faults}) => {
    $('faults').replaceChildren(...faults.map(f => el('li', JSON.stringify(f))));
  }).catch(fail);
  $('fault-create').addEventListener('submit', e => {
    e.preventDefault();
    const kind = $('fault-kind').value;
    const body = {path: $('fault-path').value.trim(), count: Number($('fault-count').value)};
    if (kind === 'status') body.status = Number($('fault-value').value);
    else if (kind === 'delay') body.delay = Number($('fault-value').value);
    else body[kind] = true;
    api('POST', 'faults', body).then(() => { say(`the next ${body.count} request(s) to ${body.path} fail`); refreshFaults(); }).catch(fail);
  });
  $('faults-clear').addEventListener('click', () => api('DELETE', 'faults').then(refreshFaults).catch(fail));

  // -- minting --------------------------------------------------------------------------------------
  $('mint').addEventListener('submit', async e => {
    e.preventDefault();
    const who = $('mint-who').value.trim();
    const audience = $('mint-audience').value.trim();
    try {
      let token;
      const kind = $('mint-kind').value;
      if (kind === 'iap') token = (await api('POST', 'iap/assertions', audience ? {email: who, audience} : {email: who})).assertion;
      else if (kind === 'firebase') token = (await api('POST', 'firebase/tokens', {uid: who})).idToken;
      else if (kind === 'oidc') token = (await api('POST', 'oidc/tokens', {claims: {sub: who, aud: audience || 'https://example.com'}})).token;
      else {
        const file = await api('POST', 'users', {email: who});
        const form = new URLSearchParams({grant_type: 'refresh_token', client_id: file.client_id,
          client_secret: file.client_secret, refresh_token: file.refresh_token});
        const answer = await (await fetch('/token', {method: 'POST', body: form})).json();
        token = answer.id_token;
      }
      output(token, `${kind}-token.txt`); say(`minted a ${kind} token`);
    } catch (error) { fail(error); }
  });
  $('copy').addEventListener('click', () => { if (navigator.clipboard) navigator.clipboard.writeText($('output').value).catch(() => {}); say('copied'); });
  $('download').addEventListener('click', () => download($('output').dataset.filename || 'output.txt', $('output').value));

  refreshInfo(); refreshAccounts(); refreshClients(); refreshProviders(); refreshFaults(); refreshLog();
  setInterval(() => { refreshLog(); if (!$('log-pause').checked) refreshFaults(); }, 1000);
})();
