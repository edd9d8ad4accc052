import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';

/**
 * TokenSource yields the bearer credential for each call: a workspace API key today, an operator's
 * OIDC access token later (a source that refreshes it from a stored refresh token). invalidate,
 * when present, is called after the API answered UNAUTHENTICATED, so that the next token() fetches
 * a fresh one instead of presenting the rejected one again.
 */
export interface TokenSource {
  token(): string | Promise<string>;
  invalidate?(): void;
}

/** apiKeySource presents a workspace API key (`pk_…`) as the bearer credential of every call. */
export function apiKeySource(apiKey: string): TokenSource {
  if (apiKey.trim() === '') throw new TypeError('apiKeySource: the API key is empty');
  return { token: () => apiKey };
}

/** authInterceptor puts `authorization: Bearer <token>` on every call and invalidates the source's token when the API refuses it. */
export function authInterceptor(source: TokenSource): Interceptor {
  return (next) => async (req) => {
    req.header.set('authorization', `Bearer ${await source.token()}`);
    try {
      return await next(req);
    } catch (err) {
      if (err instanceof ConnectError && err.code === Code.Unauthenticated) source.invalidate?.();
      throw err;
    }
  };
}
