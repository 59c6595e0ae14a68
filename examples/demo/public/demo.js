// The demo page. The token lives only in the `token` variable of this closure.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  let token = null;
  let expiresAt = 0;
  let refreshTimer = 0;
  let tokenTtl = 60;
  let refreshes = 0;

  function step(name, state, detail = '') {
    const el = $(`step-${name}`);
    el.dataset.state = state;
    el.querySelector('.detail').textContent = detail;
  }
  const describe = (error) => `${error.code ?? error.name}: ${error.message}`;
  const csrfCookie = () => document.cookie.split('; ').find((c) => c.startsWith('tokensec='));

  async function post(path, body) {
    const csrf = csrfCookie();
    const res = await fetch(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrf ? decodeURIComponent(csrf.slice(9)) : '' },
      body: JSON.stringify(body ?? {}),
    });
    const json = await res.json();
    if (!res.ok) throw Object.assign(new Error(json.message), { code: json.code ?? res.status });
    return json;
  }

  /** Reloads the session state; the response also refreshes the CSRF cookie. */
  async function loadSession() {
    const res = await fetch('/api/session');
    const session = await res.json();
    tokenTtl = session.tokenTtl;
    if (csrfCookie()) step('csrf', 'done', 'The page can read it; the session cookie itself is HttpOnly.');
    else step('csrf', 'failed', 'No tokensec cookie');
    $('login').hidden = Boolean(session.user);
    $('controls').hidden = !session.user;
    $('who').textContent = session.user ? `Logged in as ${session.user}` : '';
    return session;
  }

  async function getToken() {
    step('handshake', 'running');
    try {
      token = await TokenSec.handshake({ uri: '/api/token' });
      step('handshake', 'done', `Got a ${token.length}-character JWT, kept in memory only.`);
      return true;
    } catch (error) {
      token = null;
      step('handshake', 'failed', describe(error));
      return false;
    }
  }

  /** An API call with the token and a DPoP proof of the page's key: a copied token alone is refused. */
  async function apiFetch(path, accessToken) {
    const proof = await TokenSec.createDpopProof({ method: 'GET', url: path, accessToken });
    return fetch(path, { headers: { authorization: `DPoP ${accessToken}`, dpop: proof } });
  }

  async function callApi() {
    step('api', 'running');
    const res = await apiFetch('/api/me', token);
    const json = await res.json();
    if (!res.ok) {
      step('api', 'failed', `${res.status} ${json.error}: ${json.message}`);
      return;
    }
    step('api', 'done', json.message);
    expiresAt = json.claims.exp * 1000;
    $('claims').textContent = JSON.stringify(json.claims, null, 2);
    $('token-panel').hidden = false;
    scheduleRefresh();
  }

  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    // Refresh at 80% of the lifetime, so the API never sees an expired token.
    const inMs = Math.max(1000, expiresAt - Date.now() - tokenTtl * 200);
    step(
      'refresh',
      refreshes ? 'done' : 'pending',
      `${refreshes ? `Refreshed ${refreshes}×. ` : ''}Next refresh in ${Math.round(inMs / 1000)} s.`,
    );
    refreshTimer = setTimeout(async () => {
      if (await getToken()) {
        refreshes++;
        await callApi();
      }
    }, inMs);
  }

  setInterval(() => {
    $('time-left').textContent = token && expiresAt ? `${Math.max(0, Math.round((expiresAt - Date.now()) / 1000))} s` : '–';
  }, 250);

  async function start() {
    step('login', 'done', 'Session cookie set (HttpOnly).');
    if (await getToken()) await callApi();
  }

  $('login').addEventListener('submit', async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    step('login', 'running');
    try {
      await post('/login', { username: form.get('username'), password: form.get('password') });
      await loadSession(); // a new session has a new CSRF token
      await start();
    } catch (error) {
      step('login', 'failed', describe(error));
    }
  });

  $('refresh').addEventListener('click', async () => {
    if (await getToken()) await callApi();
  });
  $('call').addEventListener('click', callApi);

  $('logout').addEventListener('click', async () => {
    clearTimeout(refreshTimer);
    const oldToken = token;
    try {
      await post('/logout');
    } catch (error) {
      step('logout', 'failed', describe(error));
      return;
    }
    await loadSession();
    // Both must now refuse: a new handshake, and the API with the token we still hold.
    let handshakeRefused = '';
    try {
      await TokenSec.handshake({ uri: '/api/token' });
    } catch (error) {
      handshakeRefused = `${error.code}${error.status ? ` ${error.status}` : ''}`;
    }
    const res = await apiFetch('/api/me', oldToken);
    const json = await res.json();
    token = null;
    await TokenSec.deleteDpopKey(); // a new login gets a new key
    $('token-panel').hidden = true;
    const refused = handshakeRefused && res.status === 401;
    step(
      'logout',
      refused ? 'refused' : 'failed',
      `Handshake: ${handshakeRefused || 'answered!'}; API with the old token: ${res.status} ${json.error ?? ''}`,
    );
    step('login', 'pending');
  });

  loadSession().then((session) => (session.user ? start() : undefined));
})();
