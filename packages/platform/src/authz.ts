import type { DescMethod, DescService } from '@bufbuild/protobuf';
import { createContextKey, type HandlerContext, type Interceptor } from '@connectrpc/connect';
import { PermissionDeniedError, UnauthenticatedError } from './errors.js';
import type { Caller } from './identity.js';
import { REFLECTION_SERVICES } from './reflection.js';
import type { ServiceName } from './services.js';

/**
 * CallerPolicy is the per-RPC allow-list of one gRPC service: for each method, the services
 * that may call it. It is data, so that tests, docs and the Kubernetes NetworkPolicies can be
 * derived from the same table.
 */
export interface CallerPolicy {
  /** service is the fully-qualified protobuf service name. */
  readonly service: string;
  /** allow maps a method's local name (as in generated code) to its permitted callers. */
  readonly allow: Readonly<Record<string, readonly ServiceName[]>>;
}

/** defineCallerPolicy declares an allow-list; the type forces an entry for every method. */
export function defineCallerPolicy<S extends DescService>(
  service: S,
  allow: { readonly [K in keyof S['method']]: readonly ServiceName[] },
): CallerPolicy {
  return Object.freeze({ service: service.typeName, allow: Object.freeze({ ...allow }) as Record<string, readonly ServiceName[]> });
}

/**
 * OPEN_SERVICES may be called by any authenticated peer of our CA: health probes, and server
 * reflection (it describes the APIs, which are public in proto/, and grants no call).
 */
export const OPEN_SERVICES: readonly string[] = ['grpc.health.v1.Health', ...REFLECTION_SERVICES];

/** callerKey holds the authenticated caller of a request in its context values. */
export const callerKey = createContextKey<Caller | undefined>(undefined, { description: 'parley caller' });

/** callerOf returns the authenticated caller of a handler's request. */
export function callerOf(ctx: HandlerContext): Caller {
  const caller = ctx.values.get(callerKey);
  if (caller === undefined) throw new UnauthenticatedError('no verified client certificate');
  return caller;
}

/** PRINCIPAL_HEADER_PREFIX starts every header that carries an end principal from the edge. */
export const PRINCIPAL_HEADER_PREFIX = 'x-parley-principal-';

/**
 * CallerCheck is why a caller may not call a method, or undefined when it may. `headerNames`
 * lists the request's header (gRPC metadata) names, lower case; it is read only for callers other
 * than the edge, to refuse principal headers from them.
 */
export type CallerCheck = (method: DescMethod, caller: Caller | undefined, headerNames: () => Iterable<string>) => Error | undefined;

/**
 * createCallerCheck enforces the allow-lists: deny by default, so a method or a service missing
 * from the policies is refused. It also refuses principal headers from anyone but the edge,
 * which is the only service that authenticates end principals. Synchronous, so that the grpc-js
 * side runs it on a unary call without a promise (createAuthorizationInterceptor is the same
 * check for connect interceptors).
 */
export function createCallerCheck(policies: readonly CallerPolicy[]): CallerCheck {
  const table = new Map<string, ReadonlySet<string>>();
  for (const policy of policies) {
    for (const [method, callers] of Object.entries(policy.allow)) {
      table.set(`${policy.service}/${method}`, new Set(callers));
    }
  }
  // What the table says of each method, looked up once per method rather than on every call.
  const rules = new WeakMap<DescMethod, { open: boolean; allowed: ReadonlySet<string> | undefined }>();
  const ruleOf = (method: DescMethod) => {
    let rule = rules.get(method);
    if (rule === undefined) {
      rule = {
        open: OPEN_SERVICES.includes(method.parent.typeName),
        allowed: table.get(`${method.parent.typeName}/${method.localName}`),
      };
      rules.set(method, rule);
    }
    return rule;
  };
  return (method, caller, headerNames) => {
    if (caller === undefined) {
      return new UnauthenticatedError(
        `${method.parent.typeName}/${method.name} needs a client certificate with one SPIFFE ID from the trusted CA`,
      );
    }
    const rule = ruleOf(method);
    if (rule.open) return undefined;
    const allowed = rule.allowed;
    if (caller.service === undefined || allowed === undefined || !allowed.has(caller.service)) {
      return new PermissionDeniedError(`caller ${caller.spiffeId} may not call ${method.parent.typeName}/${method.name}`);
    }
    if (caller.service !== 'edge') {
      for (const name of headerNames()) {
        if (name.startsWith(PRINCIPAL_HEADER_PREFIX)) {
          return new PermissionDeniedError(`caller ${caller.spiffeId} may not send principal headers (${name}); only the edge may`);
        }
      }
    }
    return undefined;
  };
}

/** createAuthorizationInterceptor runs createCallerCheck as a connect interceptor (connect-node routes, streaming calls). */
export function createAuthorizationInterceptor(policies: readonly CallerPolicy[]): Interceptor {
  const check = createCallerCheck(policies);
  // Not an async function: an allowed call passes through without a promise of its own.
  return (next) => (req) => {
    let refusal: Error | undefined;
    try {
      refusal = check(req.method, req.contextValues.get(callerKey), () => req.header.keys());
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return refusal === undefined ? next(req) : Promise.reject(refusal);
  };
}
