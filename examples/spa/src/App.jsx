import { useEffect, useState } from 'preact/hooks';
import { deleteDpopKey } from 'tokensec/session';
import { apiOrigin, tokens } from './tokens.js';

/** The CSRF token that tokenSec.initialize() hands to the page in the `tokensec` cookie. */
const csrfToken = () => decodeURIComponent(document.cookie.match(/(?:^|; )tokensec=([^;]*)/)?.[1] ?? '');

/** A POST to the app server, with the CSRF token its csrf-sync middleware checks. */
const post = (path, body) =>
  fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-csrf-token': csrfToken() },
    body: JSON.stringify(body ?? {}),
  });

export function App() {
  const [user, setUser] = useState();
  const [expiresAt, setExpiresAt] = useState();
  const [answer, setAnswer] = useState();
  const [error, setError] = useState();

  useEffect(() => {
    // Who is logged in. (The page's own load set the `tokensec` cookie, the CSRF token that the login form and the handshake send.)
    fetch('/session')
      .then((response) => response.json())
      .then((session) => setUser(session.user));
    const onToken = (event) => setExpiresAt(event.detail.expiresAt);
    const onError = (event) => setError(event.detail.code);
    tokens.addEventListener('token', onToken);
    tokens.addEventListener('error', onError);
    return () => {
      tokens.removeEventListener('token', onToken);
      tokens.removeEventListener('error', onError);
    };
  }, []);

  async function logIn(event) {
    event.preventDefault();
    setError(undefined);
    const response = await post('/login', Object.fromEntries(new FormData(event.currentTarget)));
    if (!response.ok) return setError('Wrong user name or password.');
    const { user } = await response.json(); // the answer also carries the new session's CSRF token, for the handshake
    setUser(user);
  }

  async function callApi() {
    setError(undefined);
    try {
      // The first call runs the handshake; later calls reuse the token until it is time to refresh.
      const response = await tokens.fetch(`${apiOrigin}/hello`);
      const body = await response.json();
      if (!response.ok) throw Object.assign(new Error(body.message), { code: body.code ?? `HTTP ${response.status}` });
      setAnswer(body.message);
    } catch (failure) {
      setError(failure.code ?? failure.message);
    }
  }

  async function logOut() {
    tokens.clear(); // forget the token here and in the other tabs
    await deleteDpopKey();
    await post('/logout'); // the answer carries the new session's CSRF token, for the next login
    setUser(null);
    setAnswer(undefined);
    setExpiresAt(undefined);
  }

  if (user === undefined) return <p>Loading…</p>;
  if (!user)
    return (
      <form id="login" onSubmit={logIn}>
        <h1>Log in</h1>
        <input name="username" autocomplete="username" placeholder="user name" />
        <input name="password" type="password" autocomplete="current-password" placeholder="password" />
        <button>Log in</button>
        {error && <p class="error">{error}</p>}
      </form>
    );
  return (
    <section>
      <h1 id="user">Logged in as {user}</h1>
      <button id="call" onClick={callApi}>
        Call the API on {apiOrigin}
      </button>
      {answer && <p id="answer">{answer}</p>}
      {expiresAt && <p id="expiry">Token valid until {new Date(expiresAt).toLocaleTimeString()}</p>}
      {error && <p class="error">{error}</p>}
      <button id="logout" onClick={logOut}>
        Log out
      </button>
    </section>
  );
}
