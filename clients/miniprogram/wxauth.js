// wxauth for mini-programs: the login code every team writes by hand, once.
//
//   const wxauth = require('./wxauth.js').create({ baseUrl: 'https://api.example.com', appid: 'wx...' });
//   const me = await wxauth.request({ url: '/v1/me' });   // logs in silently when needed
//
// It logs in silently (wx.login + POST /v1/login), keeps the tokens in storage, refreshes the
// access token shortly before it expires (and when the gateway answers 10007 anyway), logs in
// again when the session or code is refused (10002, 10003) or the refresh token is spent, and
// retries once when WeChat or the service is unavailable (10005, 503) or a quota says to wait
// (429), after the `retry-after` the gateway sends. It surfaces WeChat's privacy gate
// (`requirePrivacy`, `onNeedPrivacyAuthorization`). No dependencies; works with the `wx`
// global of a mini-program, or any object with the same methods (tests pass a shim).

'use strict';

const STORAGE_KEY = 'wxauth.tokens';
const CODES = {
  ok: 10000,
  sessionUnknown: 10002,
  codeRejected: 10003,
  wechatUnavailable: 10005,
  rateLimited: 10006,
  tokenInvalid: 10007,
  accountSuspended: 10011,
  nicknameRejected: 10012,
  // Not the gateway's: the user declined the privacy guide (see requirePrivacy).
  privacyDenied: 'PRIVACY_DENIED',
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
  // The pause before a retry when the gateway names none.
  const retryDelayMs = options.retryDelayMs === undefined ? 1000 : options.retryDelayMs;
  // The longest `retry-after` honoured by waiting; a longer one is the caller's to handle.
  const maxRetryAfterMs = options.maxRetryAfterMs === undefined ? 5000 : options.maxRetryAfterMs;
  // How long before `expires_at` the access token is refreshed.
  const refreshAheadSecs = options.refreshAheadSecs === undefined ? 60 : options.refreshAheadSecs;
  const now = options.now || (() => Date.now());
  const sleep = options.sleep || ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  let loggingIn = null;
  let refreshing = null;

  // WeChat's privacy gate: getPhoneNumber, chooseAvatar and the nickname input fail silently
  // unless the app's privacy guide declares them and the user agreed. The app shows its own
  // consent popup from this handler (see README).
  if (options.onNeedPrivacyAuthorization && typeof wx.onNeedPrivacyAuthorization === 'function') {
    wx.onNeedPrivacyAuthorization(options.onNeedPrivacyAuthorization);
  }

  // How long to wait before retrying `answer`, or null when it should not be retried.
  function retryWait(answer) {
    const header = answer.header || {};
    const named = Number(header['retry-after'] || header['Retry-After']);
    if (Number.isFinite(named) && named >= 0) {
      const ms = named * 1000;
      return ms <= maxRetryAfterMs ? ms : null;
    }
    return retryDelayMs;
  }

  // wx.request as a promise of { status, body, header }.
  function call(path, { method = 'GET', data, token } = {}) {
    return new Promise((resolve, reject) => {
      const header = { 'content-type': 'application/json' };
      if (token) header.authorization = `Bearer ${token}`;
      wx.request({
        url: baseUrl + path,
        method,
        data,
        header,
        success: (res) => resolve({ status: res.statusCode, body: res.data, header: res.header || {} }),
        fail: (err) => reject(new WxauthError(0, { msg: (err && err.errMsg) || 'request failed' })),
      });
    });
  }

  const unavailable = ({ status, body }) =>
    status === 503 || (body && body.code === CODES.wechatUnavailable);
  const retryable = (answer) => unavailable(answer) || answer.status === 429;

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
          const wait = attempt === 0 && retryable(answer) ? retryWait(answer) : null;
          if (wait !== null) {
            await sleep(wait);
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

  // The stored access token, refreshed first when it expires within refreshAheadSecs (one
  // refresh for every request that finds it so); a login when there is none.
  async function accessToken() {
    const tokens = stored();
    if (!tokens) return (await login()).access_token;
    const expiresAt = Number(tokens.expires_at);
    if (Number.isFinite(expiresAt) && expiresAt * 1000 - now() < refreshAheadSecs * 1000) {
      const renewed = await refresh(tokens).catch(() => null);
      if (renewed) return renewed.access_token;
      const latest = stored();
      if (latest && latest.access_token !== tokens.access_token) return latest.access_token;
      return (await login()).access_token;
    }
    return tokens.access_token;
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
      const wait = retryable(answer) && !retried ? retryWait(answer) : null;
      if (wait !== null) {
        retried = true;
        await sleep(wait);
        continue;
      }
      throw new WxauthError(answer.status, answer.body);
    }
  }

  // Asks for the user's agreement to the privacy guide before a call that needs it (show
  // the getPhoneNumber button or chooseAvatar after it resolves). Resolves when agreed, or on
  // a base library without the gate; rejects with CODES.privacyDenied when declined.
  function requirePrivacy() {
    if (typeof wx.requirePrivacyAuthorize !== 'function') return Promise.resolve();
    return new Promise((resolve, reject) =>
      wx.requirePrivacyAuthorize({
        success: () => resolve(),
        fail: (err) =>
          reject(
            new WxauthError(0, {
              code: CODES.privacyDenied,
              msg: (err && err.errMsg) || 'the user declined the privacy guide',
            }),
          ),
      }),
    );
  }

  return {
    login,
    request,
    requirePrivacy,
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
