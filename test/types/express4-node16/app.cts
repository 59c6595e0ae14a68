// An Express 4 app in CommonJS under node16 resolution, no generics. Only Express 4's own types
// are mounted here: in this repository @types/express-session and @types/csurf resolve to
// Express 5's types (an app on Express 4 has v4 there), so they contribute only their
// declaration merging (req.session, req.csrfToken), as they do in an Express 4 app.
import express = require('express4');
import type {} from 'express-session';
import type {} from 'csurf';
import tokenSec, { TokenSecError } from 'tokensec';

declare module 'express-session' {
  interface SessionData {
    userId: string;
  }
}

const app = express();
app.use(tokenSec.initialize({ cookie: true }));
app.get('/tokensec.js', tokenSec.client());
app.post(
  '/token',
  tokenSec.handshake({ payload: (req, _res, { jkt }) => `${req.session.userId}.${jkt}.${req.csrfToken()}`, terminate: true }),
);
app.get(
  '/api/me',
  tokenSec.dpop({ verifyToken: (token) => ({ token, cnf: { jkt: 'x' } }) }),
  (req: express.Request, res: express.Response) => {
    res.json({ claims: req.tokenSec?.claims });
  },
);
app.use(tokenSec.errorHandler());
app.use((err: unknown, _req: express.Request, res: express.Response, next: express.NextFunction) => {
  if (err instanceof TokenSecError) res.status(err.status ?? 500).json({ code: err.code });
  else next(err);
});
export = app;
