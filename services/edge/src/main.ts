// The edge service process: wiring only. Its internal mTLS port serves health only; the public
// API (parley.api.v1: Connect, gRPC, gRPC-Web) is served on PARLEY_PUBLIC_PORT over TLS without
// client certificates, authenticated by workspace API keys through identity.
import { CertificateSource, PARLEY_VERSION, registerReflectionService, runMain } from '@parley/platform';
import { readFile } from 'node:fs/promises';
import { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import { OperatorService } from '@parley/proto/parley/identity/v1/operators_pb.js';
import { ApiKeyAuthenticator } from './auth.js';
import { loadEdgeConfig, requireEdgePeers } from './config.js';
import { defaultConsoleDir, loadConsoleAssets } from './console-assets.js';
import { callerPolicies } from './policy.js';
import { registerPublicRoutes, PUBLIC_MODULES, type PublicDeps } from './public/index.js';
import { createPublicAuthInterceptor, scopeTable } from './public/interceptor.js';
import { createJwksSource } from './public/jwks.js';
import { createOperatorSignIn } from './operator-signin.js';
import { createPublicServer } from './public-server.js';

runMain({
  name: 'edge',
  version: PARLEY_VERSION,
  policies: callerPolicies,
  async setup(ctx) {
    const config = loadEdgeConfig(ctx.env);
    requireEdgePeers(ctx.config);
    // Modules build their clients at registration, so a peer outside EDGE_PEERS still fails
    // start-up, with its variable named.
    const identity = ctx.clientFor('identity', IdentityService);
    const operators = ctx.clientFor('identity', OperatorService);
    const authenticator = new ApiKeyAuthenticator({ identity, operators, cacheMs: config.authCacheMs });
    const deps: PublicDeps = {
      client: (peer, service) => ctx.clientFor(peer, service),
      forgetApiKeys: (ids) => authenticator.forget(ids),
      longReadDeadlineMs: config.longReadDeadlineMs,
    };
    // Operator sign-in (OIDC) when an issuer is configured; the client secret comes from a file
    // (the chart mounts it from a Secret) and never from the environment itself.
    const operatorSignIn =
      config.oidc === undefined
        ? undefined
        : createOperatorSignIn(
            {
              ...config.oidc,
              clientSecret: (await readFile(config.oidc.clientSecretFile, 'utf8')).trim(),
              ca: config.oidc.caFile === undefined ? undefined : await readFile(config.oidc.caFile),
            },
            operators,
            ctx.logger,
          );

    // The public certificate: the configured one, else the edge's own (dev) certificate; both
    // are reloaded when the files change.
    const source =
      config.publicTls === undefined
        ? ctx.certificates
        : await CertificateSource.open(
            { certFile: config.publicTls.certFile, keyFile: config.publicTls.keyFile, caFile: ctx.config.tls.caFile },
            { pollIntervalMs: ctx.config.certReloadIntervalMs, logger: ctx.logger },
          );
    const server = createPublicServer({
      cert: source.current.cert,
      key: source.current.key,
      logger: ctx.logger,
      routes: (router) => {
        registerPublicRoutes(router, deps);
        // Reflection describes only the public services registered above (parley.api.v1).
        if (ctx.config.reflection) registerReflectionService(router);
      },
      auth: createPublicAuthInterceptor(authenticator, scopeTable(PUBLIC_MODULES)),
      jwks: createJwksSource(identity, config.jwksCacheMs),
      trustedProxies: config.trustedProxies,
      traceProxies: config.traceProxies,
      limits: config.limits,
      ...(operatorSignIn === undefined ? {} : { operatorSignIn }),
      console: await loadConsoleAssets(config.consoleDir ?? defaultConsoleDir(), ctx.logger),
    });
    const stopWatching = source.onChange((m) => server.setCertificate(m.cert, m.key));
    const port = await server.listen(config.publicPort, config.publicHost);
    ctx.logger.info(
      {
        public_port: port,
        custom_certificate: config.publicTls !== undefined,
        trusted_proxies: config.trustedProxies.cidrs,
        limits: config.limits,
        operator_sign_in: config.oidc === undefined ? 'off' : config.oidc.issuer,
      },
      'public API serving',
    );
    ctx.onClose(async () => {
      stopWatching();
      await server.close(ctx.config.shutdownGraceMs);
      if (source !== ctx.certificates) source.close();
    });
    return { routes: () => undefined };
  },
});
