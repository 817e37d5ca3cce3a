// Types of wxauth.js, for TypeScript mini-programs and editors.

/** The envelope codes the module handles or surfaces, and the privacy refusal. */
export declare const CODES: {
  readonly ok: 10000;
  readonly sessionUnknown: 10002;
  readonly codeRejected: 10003;
  readonly wechatUnavailable: 10005;
  readonly rateLimited: 10006;
  readonly tokenInvalid: 10007;
  readonly accountSuspended: 10011;
  readonly nicknameRejected: 10012;
  readonly privacyDenied: 'PRIVACY_DENIED';
};

/** What the module could not handle itself. */
export declare class WxauthError extends Error {
  readonly name: 'WxauthError';
  /** The HTTP status; 0 when no answer came (network) or for the privacy refusal. */
  readonly status: number;
  /** The envelope code (10011, 10012...), or CODES.privacyDenied. */
  readonly code?: number | string;
  /** The gateway's request id, to quote to support. */
  readonly requestId?: string;
  /** WeChat's errcode, when WeChat caused it. */
  readonly errcode?: number;
}

/** The `wx` methods the module uses (a mini-program's global, or a test shim). */
export interface WxLike {
  login(options: { success(res: { code: string }): void; fail(err: unknown): void }): void;
  request(options: {
    url: string;
    method?: string;
    data?: unknown;
    header?: Record<string, string>;
    success(res: { statusCode: number; data: any; header?: Record<string, string> }): void;
    fail(err: { errMsg?: string }): void;
  }): void;
  getStorageSync(key: string): any;
  setStorageSync(key: string, value: unknown): void;
  removeStorageSync(key: string): void;
  requirePrivacyAuthorize?(options: { success(res?: unknown): void; fail(err?: { errMsg?: string }): void }): void;
  onNeedPrivacyAuthorization?(handler: PrivacyHandler): void;
}

/** Called by WeChat when a privacy-protected API is used before the user agreed. */
export type PrivacyHandler = (
  resolve: (result: { event: 'agree' | 'disagree'; buttonId?: string }) => void,
  eventInfo: { referrer: string },
) => void;

export interface Options {
  /** The gateway's base URL, `https://api.example.com`. */
  baseUrl: string;
  /** The mini-program's appid. */
  appid: string;
  /** The `wx` object; the global one by default. */
  wx?: WxLike;
  /** The pause before a retry when the gateway names none (ms, default 1000). */
  retryDelayMs?: number;
  /** The longest `retry-after` waited for (ms, default 5000); longer ones reject. */
  maxRetryAfterMs?: number;
  /** How long before `expires_at` the access token is refreshed (s, default 60). */
  refreshAheadSecs?: number;
  /** Shows the app's privacy consent popup (registered with wx.onNeedPrivacyAuthorization). */
  onNeedPrivacyAuthorization?: PrivacyHandler;
  /** The clock, ms since the epoch (tests). */
  now?: () => number;
  /** How to wait (tests). */
  sleep?: (ms: number) => Promise<void>;
}

/** The tokens a login or a refresh gives. */
export interface Tokens {
  access_token: string;
  token_type: string;
  expires_at: number;
  refresh_token: string;
  refresh_token_expires_at: number;
  session_id?: string;
  user?: User;
}

/** The user, as `GET /v1/me` answers it. */
export interface User {
  user_id: string;
  account_id?: string;
  appid: string;
  openid: string;
  unionid?: string;
  nickname?: string;
  avatar_url?: string;
  phone_number?: string;
  [field: string]: unknown;
}

export interface Client {
  /** The silent login (wx.login + POST /v1/login); shared by concurrent callers. */
  login(): Promise<Tokens>;
  /** A call to the gateway with the user's token: the envelope's `data`. */
  request<T = any>(options: { url: string; method?: string; data?: unknown }): Promise<T>;
  /** The user's agreement to the privacy guide; rejects with CODES.privacyDenied. */
  requirePrivacy(): Promise<void>;
  me(): Promise<User>;
  bindPhone(code: string): Promise<User>;
  updateProfile(profile: { nickname?: string; avatarUrl?: string }): Promise<User>;
  exportData(): Promise<Record<string, unknown>>;
  deleteAccount(): Promise<{ erased: boolean; erase_at?: number }>;
  logout(): Promise<void>;
}

export declare function create(options: Options): Client;
