// The token session, wired once for the whole app: this is all the TokenSec code the SPA has.
import { session } from 'tokensec/session';

// Where the API is: the app server says (GET /config.json), so one build runs anywhere.
export const { apiOrigin } = await (await fetch('/config.json')).json();

// The handshake runs on this origin (POST /token, with the session cookie and the CSRF token);
// tokens.fetch() sends the token, with a DPoP proof, to the API's origin only.
export const tokens = session({ uri: '/token', origins: [apiOrigin] });
