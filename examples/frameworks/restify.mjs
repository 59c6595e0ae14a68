import { randomBytes } from 'node:crypto';
import { csrfSync } from 'csrf-sync';
import session from 'express-session';
import { SignJWT, jwtVerify } from 'jose';
import restify from 'restify';
import tokenSec from 'tokensec';

const jwtKey = randomBytes(32); // this example signs HS256 tokens; use your token-signing key
const server = restify.createServer();
server.use(restify.plugins.bodyParser());
server.use(session({ secret: randomBytes(32).toString('hex'), resave: false, saveUninitialized: true, cookie: { sameSite: 'strict' } }));
server.use(csrfSync().csrfSynchronisedProtection); // checks x-csrf-token on POST
server.use(tokenSec.initialize({ cookie: true })); // CSRF token -> `tokensec` cookie
server.get('/tokensec.js', tokenSec.client()); // the browser client, for <script src="/tokensec.js">

server.post('/login', (req, res, next) => {
  if (req.body?.user !== 'alice') return next(Object.assign(new Error('Wrong user'), { statusCode: 401 })); // check real credentials here
  req.session.regenerate((error) => {
    if (error) return next(error);
    req.session.userId = 'alice';
    res.send({ user: 'alice' });
    next();
  });
});
server.get('/me', (req, res, next) => {
  res.send({ user: req.session.userId ?? null });
  next();
});

const loggedIn = (req, res, next) => (req.session.userId ? next() : next(Object.assign(new Error('Log in first'), { statusCode: 401 })));
server.post(
  '/token',
  loggedIn,
  tokenSec.handshake({
    payload: (req, res, { jkt }) =>
      new SignJWT({ sub: req.session.userId, cnf: { jkt } }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(jwtKey),
    terminate: true,
  }),
);
// API routes: Authorization: DPoP <token> plus a proof of the same key. Restify answers refusals with their statusCode.
server.get('/api/me', tokenSec.dpop({ verifyToken: async (token) => (await jwtVerify(token, jwtKey)).payload }), (req, res, next) => {
  res.send({ user: req.tokenSec.claims.sub });
  next();
});

export default server; // server.listen(3000)
