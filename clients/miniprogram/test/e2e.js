// The mini-program module against a live stack, with a `wx` shim: wx.login asks the WeChat
// simulator for a code (as the real wx.login gets one from WeChat), wx.request is Node's
// fetch, storage is a Map. Run by tests/e2e/miniprogram.rs with GATEWAY_URL, SIM_URL, APPID.
'use strict';

const assert = require('node:assert/strict');
const wxauth = require('../wxauth.js');

const { GATEWAY_URL, SIM_URL, APPID } = process.env;
const OPENID = 'o-miniprogram';

async function post(url, body) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return response.status === 204 ? null : response.json();
}

function shim() {
  const storage = new Map();
  const counts = { login: 0, request: 0, refresh: 0 };
  const privacy = { agree: true, handlers: [] };
  const wx = {
    counts,
    storage,
    privacy,
    requirePrivacyAuthorize({ success, fail }) {
      if (privacy.agree) success({ errMsg: 'requirePrivacyAuthorize:ok' });
      else fail({ errMsg: 'requirePrivacyAuthorize:fail privacy permission is not authorized' });
    },
    onNeedPrivacyAuthorization(handler) {
      privacy.handlers.push(handler);
    },
    login({ success, fail }) {
      counts.login += 1;
      post(`${SIM_URL}/sim/login`, { appid: APPID, openid: OPENID })
        .then((minted) => success({ code: minted.code }))
        .catch(fail);
    },
    request({ url, method, data, header, success, fail }) {
      counts.request += 1;
      if (url.endsWith('/v1/token/refresh')) counts.refresh += 1;
      fetch(url, { method, headers: header, body: data === undefined ? undefined : JSON.stringify(data) })
        .then(async (response) =>
          success({
            statusCode: response.status,
            data: await response.json(),
            header: Object.fromEntries(response.headers),
          }),
        )
        .catch((err) => fail({ errMsg: String(err) }));
    },
    getStorageSync: (key) => storage.get(key) || '',
    setStorageSync: (key, value) => storage.set(key, value),
    removeStorageSync: (key) => storage.delete(key),
  };
  return wx;
}

async function main() {
  const wx = shim();
  const slept = [];
  const onNeedPrivacyAuthorization = (resolve) => resolve({ event: 'agree' });
  const client = wxauth.create({
    baseUrl: GATEWAY_URL,
    appid: APPID,
    wx,
    retryDelayMs: 10,
    // Waits are recorded, not slept: the test checks how long the client chose to wait.
    sleep: async (ms) => {
      slept.push(ms);
    },
    onNeedPrivacyAuthorization,
  });
  assert.deepEqual(wx.privacy.handlers, [onNeedPrivacyAuthorization], 'the privacy handler is registered');

  // 1. The first request logs in silently and keeps the tokens.
  const me = await client.me();
  assert.ok(me.user_id, 'the user');
  assert.equal(wx.counts.login, 1);
  const first = wx.storage.get('wxauth.tokens');
  assert.ok(first.access_token && first.refresh_token);

  // 2. The next one uses the stored token: no login.
  await client.me();
  assert.equal(wx.counts.login, 1);

  // 2b. An access token about to expire is refreshed before the request, not after a 10007.
  const soon = wx.storage.get('wxauth.tokens');
  wx.storage.set('wxauth.tokens', { ...soon, expires_at: Math.floor(Date.now() / 1000) + 10 });
  const [requestsBefore, refreshesAhead] = [wx.counts.request, wx.counts.refresh];
  await client.me();
  assert.equal(wx.counts.refresh - refreshesAhead, 1, 'refreshed ahead of expiry');
  assert.equal(wx.counts.request - requestsBefore, 2, 'one refresh and the request, no refusal');
  assert.notEqual(wx.storage.get('wxauth.tokens').refresh_token, soon.refresh_token);
  assert.equal(wx.counts.login, 1);

  // 3. A bad access token (expired, say) is refreshed with the refresh token: no login.
  wx.storage.set('wxauth.tokens', { ...wx.storage.get('wxauth.tokens'), access_token: 'x.y.z' });
  await client.me();
  assert.equal(wx.counts.login, 1, 'refreshed, not logged in again');
  assert.notEqual(wx.storage.get('wxauth.tokens').refresh_token, first.refresh_token, 'the refresh token rotated');

  // 3b. Several requests that find the access token expired at once share one refresh.
  wx.storage.set('wxauth.tokens', { ...wx.storage.get('wxauth.tokens'), access_token: 'x.y.z' });
  const refreshesBefore = wx.counts.refresh;
  const together = await Promise.all([client.me(), client.me(), client.me(), client.me()]);
  assert.ok(together.every((user) => user.user_id === me.user_id));
  assert.equal(wx.counts.refresh - refreshesBefore, 1, 'one refresh for four requests');
  assert.equal(wx.counts.login, 1, 'and no login');

  // 4. Both spent (the refresh token used up elsewhere): a fresh login.
  wx.storage.set('wxauth.tokens', { access_token: 'x.y.z', refresh_token: 'wxrt_spent-elsewhere' });
  await client.me();
  assert.equal(wx.counts.login, 2, 'logged in again');

  // 5. Profile fill-in and the phone number.
  const filled = await client.updateProfile({ nickname: 'Mini', avatarUrl: 'https://a.example/x.png' });
  assert.equal(filled.nickname, 'Mini');
  const phoneCode = (await post(`${SIM_URL}/sim/phone_code`, {
    appid: APPID, openid: OPENID, phone_number: '13800138000', pure_phone_number: '13800138000', country_code: '86',
  })).code;
  const bound = await client.bindPhone(phoneCode);
  assert.equal(bound.phone_number, '13800138000');
  // A refused phone code is the caller's to handle: an error with its envelope code.
  await assert.rejects(client.bindPhone(phoneCode), (err) => err.code === 10010 && err.status === 400);

  // 6. WeChat busy once at login: retried once with a fresh code, after the retry-after the
  // gateway named (1 s), not the client's own default pause.
  wx.storage.delete('wxauth.tokens');
  await post(`${SIM_URL}/sim/faults`, { errcode: -1, times: 1 });
  slept.length = 0;
  await client.me();
  assert.equal(wx.counts.login, 4, 'one failed login, one retried with a new code');
  assert.deepEqual(slept, [1000], 'waited as retry-after said');

  // 6b. The privacy gate: agreed, declined, and a base library without it.
  await client.requirePrivacy();
  wx.privacy.agree = false;
  await assert.rejects(client.requirePrivacy(), (err) => err.code === wxauth.CODES.privacyDenied);
  wx.privacy.agree = true;
  const old = wxauth.create({ baseUrl: GATEWAY_URL, appid: APPID, wx: { ...wx, requirePrivacyAuthorize: undefined } });
  await old.requirePrivacy();

  // 7. Logout ends the session: the old refresh token no longer works.
  const before = wx.storage.get('wxauth.tokens');
  await client.logout();
  assert.equal(wx.storage.get('wxauth.tokens'), undefined);
  const refused = await post(`${GATEWAY_URL}/v1/token/refresh`, { refresh_token: before.refresh_token });
  assert.equal(refused.code, 10007);

  // 8. A copy of the user's data, then the account cancelled: the next login is a new user.
  const exported = await client.exportData();
  assert.equal(exported.format, 'wxauth.export.v1');
  assert.equal(exported.user.user_id, me.user_id);
  const deleted = await client.deleteAccount();
  assert.equal(deleted.erased, true);
  assert.equal(wx.storage.get('wxauth.tokens'), undefined);
  const reborn = await client.me();
  assert.notEqual(reborn.user_id, me.user_id, 'a new user');

  console.log('miniprogram client: all steps passed');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
