// An Express 5 app as an ES module: the callbacks see the app's declaration merging, no generics.
import { csrfSync } from 'csrf-sync';
import express, { type Request } from 'express';
import session from 'express-session';
import tokenSec, { TokenSecError, type HandshakeEvent } from 'tokensec';
import type { ClientHandshakeOptions } from 'tokensec/client';

declare module 'express-session' {
  interface SessionData {
    userId: string;
  }
}
// What passport declares: req.user on Express's merging point.
declare global {
  namespace Express {
    interface User {
      id: string;
    }
    interface Request {
      user?: User;
    }
  }
}

const mint = (subject: string | undefined, jkt: string | undefined): string => `${subject}.${jkt}`;

const app = express();
app.use(session({ secret: 'type test', resave: false, saveUninitialized: false }));
app.use(csrfSync().csrfSynchronisedProtection);
app.use(tokenSec.initialize({ cookie: true }));
app.get('/tokensec.js', tokenSec.client({ bundle: 'session' }));

// README's pattern: req.session and req.user without generics.
app.post(
  '/token',
  tokenSec.handshake({
    payload: (req, _res, { jkt, signal }) => (signal.aborted ? '' : mint(req.session.userId ?? req.user?.id, jkt)),
    secret: async (req) => req.session.userId,
    terminate: true,
    headerLimit: 3072,
    onEvent: (event: HandshakeEvent) => void event.code,
  }),
);
// Annotated as Express's own Request: that type is used instead.
app.post('/token2', tokenSec.handshake({ payload: (req: Request) => `${req.params.id}${req.ip}` }));

app.get(
  '/api/me',
  tokenSec.dpop({ verifyToken: async (token, req) => ({ sub: req.session.userId, token, cnf: { jkt: 'x' } }) }),
  (req, res) => {
    res.json({ sub: req.tokenSec?.claims.sub, jkt: req.tokenSec?.jkt });
  },
);
app.use(tokenSec.errorHandler());
app.use((err: unknown, _req: Request, res: express.Response, next: express.NextFunction) => {
  if (err instanceof TokenSecError) res.status(err.status ?? 500).json({ code: err.code });
  else next(err);
});

tokenSec.handshake({
  // @ts-expect-error: not a field of the request
  payload: (req) => req.notAField,
});
// @ts-expect-error: headerLimit is a number
tokenSec.handshake({ payload: 't', headerLimit: '3k' });

export const browserOptions: ClientHandshakeOptions = { uri: '/token', credentials: 'include' };
export default app;
