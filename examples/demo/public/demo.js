// The demo page. The token lives only inside TokenSec.session(): this code never stores it.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const session = TokenSec.session({ uri: '/api/token' });
  let expiresAt = 0;
  let refreshes = 0;
  /** The last token, kept only to show after logout that the server refuses it. */
  let lastToken = null;

  const time = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const describe = reasonOf; // reasons.js: words for each error code
  const csrfToken = () => {
    const pair = document.cookie.split('; ').find((c) => c.startsWith('tokensec='));
    return pair ? decodeURIComponent(pair.slice('tokensec='.length)) : '';
  };

  function step(name, state, detail = '') {
    const el = $(`step-${name}`);
    el.dataset.state = state;
    el.querySelector('.detail').textContent = detail;
  }
  const status = (text) => ($('status').textContent = text);

  /** Runs a button's action with visible feedback: disabled and relabelled while it runs. */
  async function busy(button, label, action) {
    const idle = button.textContent;
    button.disabled = true;
    button.textContent = label;
    try {
      await action();
    } finally {
      button.disabled = false;
      button.textContent = idle;
    }
  }

  async function post(path, body) {
    const res = await fetch(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrfToken() },
      body: JSON.stringify(body ?? {}),
    });
    const json = await res.json();
    if (!res.ok) throw Object.assign(new Error(json.message), { code: json.code, status: res.status });
    return json;
  }

  /** Shows who is logged in, as the server said (at page load, login or logout). */
  function showUser(user, dbsc) {
    showDbsc(user ? dbsc : 'off');
    $('login').hidden = Boolean(user);
    $('controls').hidden = !user;
    $('who').textContent = user ? `Logged in as ${user}` : '';
    return user;
  }

  async function loadSession() {
    const { user, dbsc } = await (await fetch('/api/session')).json();
    return showUser(user, dbsc);
  }

  /** HTTPS mode: whether this browser bound the session to its device (DBSC). */
  function showDbsc(state) {
    const text = {
      bound: 'Device bound (DBSC): the session works only with a key this browser keeps out of reach of page script.',
      'not-bound': 'Not device bound: this browser did not register a DBSC key, so the session works as before.',
    };
    $('dbsc').dataset.state = state;
    $('dbsc').hidden = !text[state];
    $('dbsc').textContent = text[state] ?? '';
  }

  /**
   * A browser with DBSC registers its key on its own after the login answer, usually within a
   * second, but seconds later on a busy machine: look again in the background for up to 30 s.
   */
  async function watchDbsc() {
    for (let i = 0; i < 60 && $('dbsc').dataset.state === 'not-bound'; i++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const { user, dbsc } = await (await fetch('/api/session')).json();
      if (user) showDbsc(dbsc);
    }
  }

  function showClaims(claims) {
    const rows = [
      ['Subject', claims.sub],
      ['Name', claims.name],
      ['Scope', claims.scope],
      ['Issued at', time(claims.iat * 1000)],
      ['Expires at', time(claims.exp * 1000)],
      ['Lifetime', `${claims.exp - claims.iat} s`],
      // The key's thumbprint, shortened: one 43-character word would not fit a phone's width.
      ['Bound to key', claims.cnf?.jkt && `${claims.cnf.jkt.slice(0, 12)}…`],
    ];
    $('claims').replaceChildren(
      ...rows.flatMap(([name, value]) => {
        const dt = document.createElement('dt');
        const dd = document.createElement('dd');
        dt.textContent = name;
        dd.textContent = value ?? '–';
        dd.dataset.claim = name;
        return [dt, dd];
      }),
    );
    $('token-panel').hidden = false;
    showTimeLeft();
  }

  async function callApi() {
    step('api', 'running');
    const res = await session.fetch('/api/me');
    const json = await res.json();
    if (!res.ok) {
      step('api', 'failed', `${res.status} ${json.error ?? json.code}: ${json.message}`);
      status(`The API refused the call (${res.status}).`);
      return;
    }
    step('api', 'done', `${json.message} (${time(Date.now())})`);
    status(`API answered at ${time(Date.now())}.`);
    showClaims(json.claims);
  }

  session.addEventListener('token', ({ detail }) => {
    lastToken = detail.token;
    expiresAt = detail.expiresAt;
    showTimeLeft();
    step('handshake', 'done', `Got a ${detail.token.length}-character JWT at ${time(Date.now())}, kept in memory only.`);
    if (refreshes) step('refresh', 'done', `Refreshed ${refreshes}×, last at ${time(Date.now())}. Valid until ${time(expiresAt)}.`);
    else step('refresh', 'pending', `Valid until ${time(expiresAt)}; the session refreshes it before then.`);
    callApi();
  });
  session.addEventListener('refresh', () => {
    refreshes++;
    step('refresh', 'running', 'Fetching the next token…');
  });
  session.addEventListener('error', ({ detail }) => step('handshake', 'failed', describe(detail)));
  // The state the server's last handshake answer puts the session in: 'token', 'none' or 'refused'.
  session.addEventListener('state', ({ detail }) => {
    if (detail.state === 'refused') status(`No token: ${describe(detail)}`);
  });
  session.addEventListener('expired', () => step('refresh', 'failed', 'The token expired and could not be replaced.'));

  // Drawn at once whenever the expiry changes or the panel shows, then every 250 ms: never a "–"
  // for a token the page already has.
  function showTimeLeft() {
    const left = Math.max(0, Math.round((expiresAt - Date.now()) / 1000));
    $('time-left').textContent = expiresAt ? `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}` : '–';
  }
  setInterval(showTimeLeft, 250);

  function resetSteps() {
    for (const name of ['login', 'csrf', 'handshake', 'api', 'refresh']) step(name, 'pending');
    $('token-panel').hidden = true;
    expiresAt = 0;
    showTimeLeft();
    refreshes = 0;
  }

  async function start() {
    step('login', 'done', 'Session cookie set (HttpOnly).');
    step(
      'csrf',
      csrfToken() ? 'done' : 'failed',
      csrfToken() ? 'A new token for the new session; the page can read it.' : 'No tokensec cookie',
    );
    step('handshake', 'running');
    step('logout', 'pending');
    $('prove').hidden = true;
    try {
      await session.getToken(); // the token event fills in the rest
    } catch {
      // shown by the error event
    }
  }

  $('login').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    busy(event.target.querySelector('button'), 'Logging in…', async () => {
      step('login', 'running');
      try {
        // Bind the new session to a key made now, by this page: never to a stored one, which other
        // script of this origin could have written.
        const { thumbprint } = await TokenSec.rotateDpopKey();
        // The answer carries the new session's CSRF token: the handshake can follow at once.
        const { user, dbsc } = await post('/login', { username: form.get('username'), password: form.get('password'), jkt: thumbprint });
        showUser(user, dbsc);
        void watchDbsc().catch(() => {}); // only the indicator: the handshake does not wait for it
        status('Logged in.');
        await start();
      } catch (error) {
        step('login', 'failed', describe(error));
        status('Login failed.');
      }
    });
  });

  $('call').addEventListener('click', (event) => busy(event.target, 'Calling…', callApi));

  $('logout').addEventListener('click', (event) =>
    busy(event.target, 'Logging out…', async () => {
      session.clear(); // forget the token here and in other tabs; stop refreshing
      await TokenSec.deleteDpopKey(); // a new login gets a new key
      try {
        await post('/logout');
      } catch (error) {
        step('logout', 'failed', describe(error));
        return;
      }
      resetSteps();
      showUser(null, 'off');
      step('logout', 'done', `Logged out at ${time(Date.now())}. The token is forgotten and the DPoP key deleted.`);
      status('Logged out.');
      $('prove').hidden = !lastToken;
    }),
  );

  // After logout: the server refuses both a new handshake and the old token (with a proof of a new key).
  $('prove').addEventListener('click', (event) =>
    busy(event.target, 'Trying…', async () => {
      let handshake = 'answered!';
      try {
        await TokenSec.handshake({ uri: '/api/token' });
      } catch (error) {
        handshake = describe(error);
      }
      const proof = await TokenSec.createDpopProof({ method: 'GET', url: '/api/me', accessToken: lastToken });
      const res = await fetch('/api/me', { headers: { authorization: `DPoP ${lastToken}`, dpop: proof } });
      const json = await res.json();
      const refused = handshake !== 'answered!' && res.status === 401;
      step('logout', refused ? 'refused' : 'failed', `Handshake: ${handshake}; API with the old token: ${res.status} ${json.error ?? ''}`);
      status(refused ? 'Both refused, as they should.' : 'Something was not refused!');
    }),
  );

  loadSession().then((user) => (user ? start() : undefined));
})();
