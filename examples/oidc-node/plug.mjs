// wxauth plugged into a Node service with a stock OpenID Connect library (openid-client),
// by configuration only: the issuer URL and the mini-program's appid.
//
//   WXAUTH_ISSUER=https://auth.example.com APPID=wx... WX_LOGIN_CODE=<wx.login() code> node plug.mjs
//
// It discovers the endpoints, exchanges the wx.login() code for tokens (RFC 8693), reads the
// user's claims, refreshes, and revokes; then prints what it saw as one JSON line.

import * as client from 'openid-client';

const issuer = new URL(process.env.WXAUTH_ISSUER);
const appid = process.env.APPID;
const code = process.env.WX_LOGIN_CODE;
// A development issuer on plain http (this machine): allowed only when it is one.
const execute = issuer.protocol === 'http:' ? [client.allowInsecureRequests] : [];

// A mini-program holds no secret: it is a public client, the code is its credential.
const config = await client.discovery(issuer, appid, undefined, client.None(), { execute });

const tokens = await client.genericGrantRequest(
  config,
  'urn:ietf:params:oauth:grant-type:token-exchange',
  {
    subject_token: code,
    subject_token_type: 'urn:wxauth:params:oauth:token-type:wx-login-code',
    scope: 'openid profile phone',
  },
);
// The ID token was checked by the library: issuer, audience (the appid), expiry.
const idClaims = tokens.claims();
const userinfo = await client.fetchUserInfo(config, tokens.access_token, idClaims.sub);
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
await client.tokenRevocation(config, refreshed.refresh_token, { token_type_hint: 'refresh_token' });

console.log(
  JSON.stringify({
    issuer: config.serverMetadata().issuer,
    sub: idClaims.sub,
    aud: idClaims.aud,
    scope: tokens.scope,
    userinfo,
    refreshed: refreshed.access_token !== tokens.access_token,
    revoked: refreshed.refresh_token,
  }),
);
