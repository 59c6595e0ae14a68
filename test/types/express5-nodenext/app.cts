// The same package from CommonJS: require('tokensec') under nodenext.
import express = require('express');
import tokenSec, { TokenSecError } from 'tokensec';

const app = express();
app.post('/token', tokenSec.handshake({ payload: (req) => req.session.userId ?? '', terminate: true }));
app.use(tokenSec.errorHandler());
const code: TokenSecError['code'] = 'ERR_TOKENSEC_TIMEOUT';
app.locals.code = code;
export = app;
