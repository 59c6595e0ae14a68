// The page: log in and out with the CSRF token from the `tokensec` cookie, and call the API
// through TokenSec.session(), which runs the handshake and signs a DPoP proof per request.
const session = TokenSec.session({ uri: '/token' });
const out = document.getElementById('out');
const show = (value) => (out.textContent = typeof value === 'string' ? value : JSON.stringify(value, null, 2));
const csrfToken = () => decodeURIComponent(/(?:^|; )tokensec=([^;]*)/.exec(document.cookie)?.[1] ?? '');
const post = (path) => fetch(path, { method: 'POST', headers: { 'x-csrf-token': csrfToken() } }).then((r) => r.json());

document.getElementById('login').onclick = async () => show(await post('/login'));
document.getElementById('logout').onclick = async () => (session.clear(), show(await post('/logout')));
document.getElementById('call').onclick = async () => {
  try {
    show(await (await session.fetch('/api/me')).json());
  } catch (error) {
    show(`${error.code}: ${error.message}`);
  }
};
