// wxauth for mini-programs: the login code every team writes by hand, once.
//
//   const wxauth = require('./wxauth.js').create({ baseUrl: 'https://api.example.com', appid: 'wx...' });
//   const me = await wxauth.request({ url: '/v1/me' });   // logs in silently when needed
//
// It logs in silently (wx.login + POST /v1/login), keeps the tokens in storage, refreshes the
// access token when the gateway answers 10007, logs in again when the session or code is
// refused (10002, 10003) or the refresh token is spent, and retries once, after a pause, when
// WeChat or the service is unavailable (10005, 503). No dependencies; works with the `wx`
// global of a mini-program, or any object with the same methods (tests pass a shim).

'use strict';

const STORAGE_KEY = 'wxauth.tokens';
const CODES = {
  ok: 10000,
  sessionUnknown: 10002,
  codeRejected: 10003,
  wechatUnavailable: 10005,
  tokenInvalid: 10007,
  accountSuspended: 10011,
  nicknameRejected: 10012,
};

class WxauthError extends Error {
  constructor(status, body) {
    super((body && body.msg) || `HTTP ${status}`);
    this.name = 'WxauthError';
    this.status = status;
    this.code = body && body.code;
    this.requestId = body && body.request_id;
    this.errcode = body && body.errcode;
  }
}

function create(options) {
  const wx = options.wx || globalThis.wx;
  const baseUrl = options.baseUrl.replace(/\/$/, '');
  const appid = options.appid;
  const retryDelayMs = options.retryDelayMs === undefined ? 1000 : options.retryDelayMs;
  let loggingIn = null;
  let refreshing = null;

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // wx.request as a promise of { status, body }.
  function call(path, { method = 'GET', data, token } = {}) {
    return new Promise((resolve, reject) => {
      const header = { 'content-type': 'application/json' };
      if (token) header.authorization = `Bearer ${token}`;
      wx.request({
        url: baseUrl + path,
        method,
        data,
        header,
        success: (res) => resolve({ status: res.statusCode, body: res.data }),
        fail: (err) => reject(new WxauthError(0, { msg: (err && err.errMsg) || 'request failed' })),
      });
    });
  }

  const unavailable = ({ status, body }) =>
    status === 503 || (body && body.code === CODES.wechatUnavailable);

  function stored() {
    const tokens = wx.getStorageSync(STORAGE_KEY);
    return tokens && tokens.access_token ? tokens : null;
  }

  function store(tokens) {
    wx.setStorageSync(STORAGE_KEY, {
      access_token: tokens.access_token,
      refresh_token: tokens.refresh_token,
      expires_at: tokens.expires_at,
    });
  }

  function wxLogin() {
    return new Promise((resolve, reject) =>
      wx.login({ success: (res) => resolve(res.code), fail: reject }),
    );
  }

  // The silent login; one at a time, however many requests want it. A failure for WeChat
  // being unavailable is retried once, with a fresh code (a code may have been used up).
  function login() {
    if (!loggingIn) {
      loggingIn = (async () => {
        for (let attempt = 0; ; attempt += 1) {
          const code = await wxLogin();
          const answer = await call('/v1/login', { method: 'POST', data: { appid, code } });
          if (answer.status === 200 && answer.body.code === CODES.ok) {
            store(answer.body.data);
            return answer.body.data;
          }
          if (attempt === 0 && unavailable(answer)) {
            await sleep(retryDelayMs);
            continue;
          }
          throw new WxauthError(answer.status, answer.body);
        }
      })().finally(() => {
        loggingIn = null;
      });
    }
    return loggingIn;
  }

  // A new pair for the refresh token; null when it is spent (then log in again). One at a
  // time, like the login: requests that find the access token expired together share one
  // refresh instead of each spending the same refresh token.
  function refresh(tokens) {
    if (!refreshing) {
      refreshing = (async () => {
        const answer = await call('/v1/token/refresh', {
          method: 'POST',
          data: { refresh_token: tokens.refresh_token },
        });
        if (answer.status === 200 && answer.body.code === CODES.ok) {
          store(answer.body.data);
          return answer.body.data;
        }
        if (answer.body && answer.body.code === CODES.tokenInvalid) return null;
        throw new WxauthError(answer.status, answer.body);
      })().finally(() => {
        refreshing = null;
      });
    }
    return refreshing;
  }

  async function accessToken() {
    return (stored() || (await login())).access_token;
  }

  // A call to the gateway with the user's token: `data` of the envelope, or a WxauthError.
  async function request({ url, method = 'GET', data } = {}) {
    let token = await accessToken();
    let refreshed = false;
    let relogged = false;
    let retried = false;
    for (;;) {
      const answer = await call(url, { method, data, token });
      const code = answer.body && answer.body.code;
      if (answer.status === 200 && code === CODES.ok) return answer.body.data;
      if (code === CODES.tokenInvalid && !refreshed) {
        refreshed = true;
        const tokens = stored();
        if (tokens && tokens.access_token !== token) {
          // Another request has refreshed (or logged in) meanwhile: use its token.
          token = tokens.access_token;
          continue;
        }
        const renewed = tokens && (await refresh(tokens));
        token = (renewed || (await login())).access_token;
        continue;
      }
      if ((code === CODES.sessionUnknown || code === CODES.codeRejected || code === CODES.tokenInvalid) && !relogged) {
        relogged = true;
        token = (await login()).access_token;
        continue;
      }
      if (unavailable(answer) && !retried) {
        retried = true;
        await sleep(retryDelayMs);
        continue;
      }
      throw new WxauthError(answer.status, answer.body);
    }
  }

  return {
    login,
    request,
    // The user: profile, phone, ids.
    me: () => request({ url: '/v1/me' }),
    // e.detail.code of <button open-type="getPhoneNumber">.
    bindPhone: (code) => request({ url: '/v1/me/phone', method: 'POST', data: { code } }),
    // What chooseAvatar and the nickname input give (either or both).
    updateProfile: ({ nickname, avatarUrl } = {}) =>
      request({
        url: '/v1/me/profile',
        method: 'POST',
        data: Object.assign({}, nickname === undefined ? {} : { nickname }, avatarUrl === undefined ? {} : { avatar_url: avatarUrl }),
      }),
    // A copy of everything the service keeps about the user (the document wxauth.export.v1).
    exportData: () => request({ url: '/v1/me/export' }),
    // The user cancels their account (注销): every session ends and the data is erased (or
    // will be, at `erase_at`, during a cooling-off). The stored tokens go too.
    async deleteAccount() {
      const deleted = await request({ url: '/v1/me', method: 'DELETE' });
      wx.removeStorageSync(STORAGE_KEY);
      return deleted;
    },
    async logout() {
      const tokens = stored();
      wx.removeStorageSync(STORAGE_KEY);
      if (tokens) await call('/v1/logout', { method: 'POST', data: { refresh_token: tokens.refresh_token } });
    },
  };
}

module.exports = { create, WxauthError, CODES };
