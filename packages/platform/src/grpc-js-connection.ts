import * as grpc from '@grpc/grpc-js';
import { recordPeerConnectionFailure, type ConnectionFailureReason } from './metrics.js';

type ConnectivityState = grpc.connectivityState;
const { connectivityState } = grpc;

/**
 * WATCHED_PICK_FIRST is a load-balancing policy that is grpc-js's own pick_first, watched: it
 * passes pick_first's picker through untouched (nothing per call) and reports each connection
 * attempt's outcome to the ConnectionWatch its config names. grpc-js has no other public way to
 * a failed connection's reason or to resetting a channel's reconnect backoff; load-balancing
 * policies are its documented extension point (`experimental`, as xDS uses it; grpc-js is
 * pinned exactly).
 */
const WATCHED_PICK_FIRST = 'parley_watched_pick_first';
const WATCHES = Symbol.for('parley.grpc-js.connection-watches');

/**
 * watches holds the ConnectionWatch of each live channel, by the id its service config carries.
 * Process-wide, like grpc-js's registry of policies: were this module loaded twice, the policy
 * registered last must still find the watches of the first.
 */
const shared = globalThis as { [WATCHES]?: { byId: Map<number, ConnectionWatch>; nextId: number } };
const registry = (shared[WATCHES] ??= { byId: new Map(), nextId: 1 });
const watches = registry.byId;

class WatchedPickFirstConfig implements grpc.experimental.TypedLoadBalancingConfig {
  constructor(readonly watchId: number) {}
  getLoadBalancerName(): string {
    return WATCHED_PICK_FIRST;
  }
  toJsonObject(): object {
    return { [WATCHED_PICK_FIRST]: { watch: this.watchId } };
  }
  static createFromJson(obj: unknown): WatchedPickFirstConfig {
    const id = (obj as { watch?: unknown } | null)?.watch;
    if (typeof id !== 'number') throw new Error(`${WATCHED_PICK_FIRST}: a numeric "watch" is required`);
    return new WatchedPickFirstConfig(id);
  }
}

const PICK_FIRST = grpc.experimental.parseLoadBalancingConfig({ pick_first: {} });

class WatchedPickFirst implements grpc.experimental.LoadBalancer {
  readonly #child: grpc.experimental.ChildLoadBalancerHandler;
  #watch: ConnectionWatch | undefined;

  constructor(helper: grpc.experimental.ChannelControlHelper) {
    this.#child = new grpc.experimental.ChildLoadBalancerHandler(
      grpc.experimental.createChildChannelControlHelper(helper, {
        createSubchannel: (address, args) => {
          const subchannel = helper.createSubchannel(address, args);
          this.#watch?.observe(subchannel);
          return subchannel;
        },
        updateState: (state, picker, errorMessage) => {
          // First: the calls this state fails read its failure; calls it lets go resume a microtask
          // later, on the picker set below.
          this.#watch?.reported(state, errorMessage);
          helper.updateState(state, picker, errorMessage);
        },
      }),
    );
  }

  updateAddressList(
    endpoints: Parameters<grpc.experimental.LoadBalancer['updateAddressList']>[0],
    config: grpc.experimental.TypedLoadBalancingConfig,
    options: grpc.ChannelOptions,
    resolutionNote: string,
  ): boolean {
    if (config instanceof WatchedPickFirstConfig) this.#watch = watches.get(config.watchId);
    return this.#child.updateAddressList(endpoints, PICK_FIRST, options, resolutionNote);
  }
  exitIdle(): void {
    this.#child.exitIdle();
  }
  resetBackoff(): void {
    this.#child.resetBackoff();
  }
  destroy(): void {
    this.#child.destroy();
  }
  getTypeName(): string {
    return WATCHED_PICK_FIRST;
  }
}

grpc.experimental.registerLoadBalancerType(WATCHED_PICK_FIRST, WatchedPickFirst, WatchedPickFirstConfig);

/** REASON_WEIGHT orders reasons by what they tell: one address refusing while another's TLS failed is a TLS failure. */
const REASON_WEIGHT: Record<ConnectionFailureReason, number> = { refused: 1, other: 2, timeout: 3, tls: 4, identity: 5 };

/** GRPC_STAMP is the time grpc-js appends to a connection error, " (2026-12-02T05:00:00.000Z)". */
const GRPC_STAMP = /\s*\(\d{4}-\d\d-\d\dT[\d:.]+Z\)\s*$/;

/**
 * CLOSED_AFTER_HANDSHAKE is grpc-js's word for a connection whose TLS handshake succeeded and that
 * closed before the server's HTTP/2 settings came. Under TLS 1.3 that is how a server refusing our
 * client certificate looks from here: Node reports no alert, only the close.
 */
const CLOSED_AFTER_HANDSHAKE = /^(Error: )?Failed to connect\b/;

/** cleanDetail is a connection error as a person reads it: without grpc-js's "Error: " and time stamps. */
function cleanDetail(message: string): string {
  if (CLOSED_AFTER_HANDSHAKE.test(message)) {
    return "the server closed the connection right after the TLS handshake: when this repeats, it refused this service's client certificate (not from the CA it trusts, expired, or without a SPIFFE ID)";
  }
  return message
    .replace(/^Error: /, '')
    .replace(GRPC_STAMP, '')
    .replace(GRPC_STAMP, '')
    .trim();
}

/** classifyConnectionError reads the reason of a failed connection attempt from its error text (Node's and OpenSSL's words). */
export function classifyConnectionError(message: string): ConnectionFailureReason {
  if (/ECONNREFUSED/.test(message)) return 'refused';
  // A connection cut during or right after the handshake (a peer pod killed or restarting, a proxy
  // resetting) is an outage, not a misconfiguration, though Node's words for it say "TLS".
  if (/ECONNRESET|EPIPE|socket disconnected before secure TLS connection|socket hang up/i.test(message)) return 'other';
  if (CLOSED_AFTER_HANDSHAKE.test(message)) return 'tls';
  if (/ETIMEDOUT|timed out|timeout/i.test(message)) return 'timeout';
  if (/certificate|SSL|TLS|self[- ]signed|unable to (get|verify)|CERT_|handshake/i.test(message)) return 'tls';
  return 'other';
}

/** ConnectionFailure is the last failed connection attempt of a channel. */
export interface ConnectionFailure {
  readonly reason: ConnectionFailureReason;
  /** detail is the error as Node or OpenSSL put it (never certificate content beyond the names checked). */
  readonly detail: string;
  readonly at: number;
}

/** ConnectionEvents hears a channel's failed connection attempts and its connections (the client's misconfiguration log). */
export interface ConnectionEvents {
  failed(failure: ConnectionFailure): void;
  connected(): void;
}

/**
 * RETRY_SPACING_MS: a call that meets a failed channel starts a new connection attempt at once,
 * but no sooner than this after the last failed one, so that calls during an outage do not
 * become a stream of connection attempts (grpc-js's own backoff starts at the same 250 ms).
 */
const RETRY_SPACING_MS = 250;

/**
 * ConnectionWatch follows one grpc-js channel's connection attempts: it counts each failed one
 * (parley.peer.connection_failures, by reason), remembers the last, and lets a call that meets the
 * channel in TRANSIENT_FAILURE wait for one fresh attempt instead of failing unsent.
 */
export class ConnectionWatch {
  readonly id = registry.nextId++;
  /** failure is the last failed attempt, until a connection is made. */
  failure: ConnectionFailure | undefined;
  #round: { reason: ConnectionFailureReason; detail: string; closedAfterHandshake: boolean } | undefined;
  /** #closedInARow counts failed attempts in a row that were closes right after the handshake. */
  #closedInARow = 0;
  #identityRefusal: string | undefined;
  /** #subchannels are the channel's subchannels by address (for resetting their backoff). */
  readonly #subchannels = new Map<string, grpc.experimental.SubchannelInterface>();
  readonly #observed = new WeakSet<object>();
  readonly #waiters = new Set<() => void>();
  #resetTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly peer: string,
    private readonly events?: ConnectionEvents,
  ) {
    watches.set(this.id, this);
    // A series that first appears at 1 has no increase to Prometheus: the misconfigurations an
    // alert reads are there at 0 from the first connection.
    recordPeerConnectionFailure(peer, 'tls', 0);
    recordPeerConnectionFailure(peer, 'identity', 0);
  }

  /** serviceConfig is the channel option that makes a channel's policy report to this watch. */
  get serviceConfig(): string {
    return JSON.stringify({ loadBalancingConfig: [new WatchedPickFirstConfig(this.id).toJsonObject()] });
  }

  /** identityRefused notes the reason the server's certificate was refused by the identity check (host name or SPIFFE ID). */
  identityRefused(message: string): void {
    this.#identityRefusal = message;
  }

  /** observe follows a subchannel's attempts (once per real subchannel: grpc-js hands out a new wrapper on every re-resolution). */
  observe(subchannel: grpc.experimental.SubchannelInterface): void {
    this.#subchannels.set(subchannel.getAddress(), subchannel);
    const real = subchannel.getRealSubchannel();
    if (this.#observed.has(real)) return;
    this.#observed.add(real);
    real.addConnectivityStateListener((_s, _previous, state, _keepalive, errorMessage) => {
      if (state === connectivityState.TRANSIENT_FAILURE && errorMessage !== undefined) {
        const detail = cleanDetail(errorMessage);
        const refusal = this.#identityRefusal;
        const reason = refusal !== undefined && errorMessage.includes(refusal) ? 'identity' : classifyConnectionError(errorMessage);
        const closedAfterHandshake = reason === 'tls' && CLOSED_AFTER_HANDSHAKE.test(errorMessage);
        if (this.#round === undefined || REASON_WEIGHT[reason] > REASON_WEIGHT[this.#round.reason])
          this.#round = { reason, detail, closedAfterHandshake };
      }
      // grpc-js runs every listener of a change at once (pick_first's comes after this one and
      // updates the channel's picker), so a waiting call resumes, a microtask later, on the new state.
      if (state === connectivityState.READY || state === connectivityState.TRANSIENT_FAILURE) this.#settle();
    });
  }

  /** reported is the channel's state as its policy reports it: a TRANSIENT_FAILURE ends one failed attempt over every address. */
  reported(state: ConnectivityState, errorMessage: string | null): void {
    if (state === connectivityState.TRANSIENT_FAILURE) {
      const fallback = classifyConnectionError(errorMessage ?? '');
      const round = this.#round ?? {
        reason: fallback,
        detail: cleanDetail((errorMessage ?? 'no connection').replace(/^No connection established\. Last error: /, '')),
        closedAfterHandshake: fallback === 'tls' && CLOSED_AFTER_HANDSHAKE.test(errorMessage ?? ''),
      };
      this.#round = undefined;
      // A close right after the handshake is a server refusing our certificate only when it
      // repeats: once, it is as likely a server going away between handshake and HTTP/2.
      const closed = round.closedAfterHandshake;
      // Only a peer really gone (refused, timed out) or a connection made ends a run of closes: a
      // reset between two of them (the server's close racing our HTTP/2 preface) does not.
      if (closed) this.#closedInARow += 1;
      else if (round.reason === 'refused' || round.reason === 'timeout') this.#closedInARow = 0;
      const reason: ConnectionFailureReason = closed && this.#closedInARow < 2 ? 'other' : round.reason;
      this.failure = { reason, detail: round.detail, at: Date.now() };
      recordPeerConnectionFailure(this.peer, reason);
      this.events?.failed(this.failure);
      this.#settle();
    } else if (state === connectivityState.READY) {
      this.#round = undefined;
      this.#closedInARow = 0;
      this.failure = undefined;
      this.#identityRefusal = undefined;
      this.events?.connected();
      this.#wake();
    }
  }

  /** misconfigured is the last failure when it was one retrying cannot mend (TLS or identity). */
  get misconfigured(): ConnectionFailure | undefined {
    const f = this.failure;
    return f !== undefined && (f.reason === 'tls' || f.reason === 'identity') ? f : undefined;
  }

  /**
   * nextAttempt resolves once the channel has made one more connection attempt (or the call's
   * deadline passed, or the caller gave up): the backoff is cut short, no sooner than
   * RETRY_SPACING_MS after the last failure. Calls waiting together share the attempt.
   */
  nextAttempt(deadline: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        this.#waiters.delete(done);
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.#waiters.add(done);
      if (Number.isFinite(deadline)) timer = setTimeout(done, Math.max(0, deadline - Date.now()));
      signal?.addEventListener('abort', done, { once: true });
      if (this.#resetTimer === undefined) {
        const wait = Math.max(0, (this.failure?.at ?? 0) + RETRY_SPACING_MS - Date.now());
        this.#resetTimer = setTimeout(() => {
          this.#resetTimer = undefined;
          // Subchannels in their backoff connect now (grpc-js does it on the next tick); one already
          // connecting is waited for. If none connects, the waiting calls go on as they are.
          for (const s of this.#subchannels.values()) s.getRealSubchannel().resetBackoff();
          setImmediate(() => this.#settle());
        }, wait);
        this.#resetTimer.unref();
      }
    });
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  /** #settle lets the waiting calls go once no address is being connected to: the attempt has ended, either way. */
  #settle(): void {
    if (this.#waiters.size === 0) return;
    for (const s of this.#subchannels.values()) if (s.getConnectivityState() === connectivityState.CONNECTING) return;
    this.#wake();
  }

  /** close forgets the channel and lets its waiting calls go (they fail as the closed channel's). */
  close(): void {
    watches.delete(this.id);
    if (this.#resetTimer !== undefined) clearTimeout(this.#resetTimer);
    this.#resetTimer = undefined;
    this.#wake();
  }
}
