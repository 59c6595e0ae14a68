// The same under node16 as an ES module.
import express from 'express4';
import tokenSec, { VERSION } from 'tokensec';

const app = express();
app.post('/token', tokenSec.handshake({ payload: (req) => req.headers.host ?? '', secret: 'a secret of 16 bytes or more' }));
export const version: 'v3' = VERSION;
export default app;
